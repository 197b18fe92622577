"""GS1 interoperability: EPCIS 2.0 events of each product's life and the GS1-Conformant
Digital Link resolver (identifiers, event hash IDs, event builders, link types and linksets)."""
