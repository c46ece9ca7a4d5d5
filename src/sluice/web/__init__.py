"""The HTTP surface above the gateway: admin APIs, the dashboard and the alerts endpoint.

Everything here knows the gateway only through the typed `GATEWAY` app key
(`sluice.web.appkeys`), never by importing it at run time; nothing below this package
imports it (import-linter contract in pyproject.toml).

    appkeys.py        GATEWAY: the app key holding the `Gateway`
    access.py         the admin checks shared by /ui, /admin/* and operator endpoints
    cache_admin.py    /admin/cache/purge, /admin/cache/stats
    keys_admin.py     /admin/keys (virtual keys), in the app or on server.admin_port
    alerts.py         GET /v1/sluice/alerts and the alert engine's app wiring
    ui/               the dashboard (/ui)
"""
