"""What services may know about each other: event envelope, event payloads, cross-service requests.

A service imports only from here (never another service's package). Each file holds the
contract of one owning service; `events.py` holds the envelope and the registry.
"""
