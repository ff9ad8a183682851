from septum.services.signed_fields import canonical


def test_canonical_ignores_order_and_unsigned_fields() -> None:
    a = canonical({"b": 2, "a": "x", "signature": b"sig", "cert": b"der"})
    b = canonical({"a": "x", "b": 2})
    assert a == b
    assert canonical({"a": "x", "b": 3}) != b
    assert canonical({"a": "x", "b": 2.0}) != b  # a float is not an int: types are part of what is signed
