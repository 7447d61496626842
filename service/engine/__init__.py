"""The benefit engine (spec §2-7): pure functions from a receipt, the offers and a member's
state to the benefits of every line. No gRPC, no SQL, no threads, no I/O.

    snapshot.build_snapshot(...) -> Snapshot     catalogue and offers, indexed once
    calculate.calculate(snapshot, receipt)       the benefits of a receipt
    validation.validate_receipt(...)             INVALID_ARGUMENT checks of a receipt
    selection                                    rules of a member's slots and choices
    money, usage, texts                          rounding, limit periods, printed texts
"""
