"""The web pages: server-rendered templates and small, dependency-free JavaScript (`static/`).

The upload-and-result flow is plain HTML forms, so it works with JavaScript turned off; the scripts add
drag-and-drop, a preview, and the triage chat on top.
"""
