"""Connectors: what HubSpot, Salesforce, Pipedrive, Close, Calendly, Chili Piper and any other
JSON webhook send, translated at the edge into leadflow's inbound records.

One engine (``engine``) reads declarative mappings (``mappings/*.toml``: JSON pointers,
authentication, status translation, dedup key); code only where a vendor's shape needs it
(``hubspot``: signature v3 and contacts fetched by id; ``salesforce``: SOAP). ``http``
registers one path per connector. A vendor object id becomes a lead id by a fixed derivation
(``records.external_lead_id``), so an event naming only the CRM's id finds its lead.
"""
