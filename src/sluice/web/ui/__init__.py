"""The web dashboard (`GET /ui`): call `install(app)` on an app from `create_app`."""

from sluice.web.ui.app import ADMIN_KEY_ENV, COOKIE, install

__all__ = ["ADMIN_KEY_ENV", "COOKIE", "install"]
