"""npus"""
