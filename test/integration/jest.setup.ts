// Integration tests talk to real servers and real processes; give them room (timing is never asserted).
jest.setTimeout(120_000);
