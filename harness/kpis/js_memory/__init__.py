"""js_memory"""
