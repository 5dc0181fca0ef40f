"""Placeholder replaced by the ChatGPT adapter."""
class ChatGPTWeb:
    pass
