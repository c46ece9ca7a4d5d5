"""Pipeline stages that belong to no single feature: auth, the agent guard, structured
output and settle. Feature-owned stages live with their feature (the caches in `cache/`,
limits in `governance/`, token policy in `context/`, the router in `routing/`); the order of
all of them is decided in one place, `sluice.gateway.build_stages`.
"""
