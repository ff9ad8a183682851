"""A small hospital-server client for the Septum reference pump: sends signed FHIR R4 / HL7 v2 infusion
orders over mutual TLS and receives the pump's events (HL7 ORU over MLLP, or FHIR resources over HTTPS)."""
