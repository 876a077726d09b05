"""tui/models"""
