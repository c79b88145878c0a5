"""What the services say happened: typed domain events, and their wire form between instances."""
