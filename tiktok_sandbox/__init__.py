"""A local stand-in for the TikTok Marketing API v1.3 (the parts Audience Builder uses).

Its own program: Flask + SQLite, no Django. Run it with `python -m tiktok_sandbox`.
See /work/shared/spec/TIKTOK_API.md for the wire contract it reproduces.
"""
