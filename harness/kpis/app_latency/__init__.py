"""app_latency"""
