"""tinyml"""
