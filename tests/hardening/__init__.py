"""Production hardening: tokens, the authorizer, and the authorization, domain and monitoring components."""
