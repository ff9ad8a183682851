"""TEST DOUBLES standing in for the Septum auth, audit and update services in the pump e2e rig.

They implement only the message contract the pump's partitions rely on (login with a PIN, sessions,
role checks, forwarding; an append-only JSON-lines audit file; a signed drug library sent at start). They
are NOT the services: no argon2, no hash chain, no update bundles. The rig uses them only with
``PumpRig(services="doubles")`` while the real services are not installed.
"""
