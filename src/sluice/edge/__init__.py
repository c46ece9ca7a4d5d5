"""The gateway's edge against hostile clients: body decoding with bounds (size, compression,
JSON depth, integer range), read timeouts, a per-address connection cap, and HTTP-parser
errors answered in the API's JSON error format without logging the raw request."""
