"""Acting: the outbox and the wording of the thread notes it delivers."""
