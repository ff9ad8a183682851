"""The pump's hospital link (network partition): FHIR R4 and HL7 v2 orders in over mutual TLS, events out."""
