"""imgedit: a NiceGUI dashboard for editing and generating images in the background.

The core package (everything outside ``imgedit.ui``) never imports nicegui.
"""

__version__ = "0.1.0"
