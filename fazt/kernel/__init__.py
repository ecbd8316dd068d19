"""The fazt kernel: app registry, manifest schema, routing, plugins and notifications."""
