"""streaming_boards"""
