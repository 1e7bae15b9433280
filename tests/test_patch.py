"""RFC 7396 merge patches: diff then apply reproduces the new state."""

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import patch as merge_patch

scalars = st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5))
values = st.recursive(
    scalars | st.lists(scalars, max_size=3),
    lambda children: st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)
states = st.dictionaries(st.text(max_size=4), values, max_size=6)


@settings(max_examples=400)
@given(states, states)
def test_diff_then_apply_gives_new_state(old, new):
    change = merge_patch.diff(old, new)
    assert merge_patch.apply(old, change if change is not None else {}) == new
    assert (change is None) == (old == new and _same_types(old, new))


@given(states, states)
def test_apply_modifies_neither_input(old, new):
    old_copy, change = repr(old), merge_patch.diff(old, new)
    patched = merge_patch.apply(old, change or {})
    assert repr(old) == old_copy
    if change:
        patched["__added__"] = 1
        assert "__added__" not in old


def test_removed_key_is_null_and_changed_field_is_alone():
    old = {"items": {"q1": {"status": "queued", "title": "t"}, "q7": {"status": "done"}}}
    new = {"items": {"q1": {"status": "running", "title": "t"}}}
    assert merge_patch.diff(old, new) == {"items": {"q1": {"status": "running"}, "q7": None}}


def test_type_change_between_equal_values_is_a_change():
    assert merge_patch.diff({"a": 1}, {"a": True}) == {"a": True}
    assert merge_patch.diff({"a": 1}, {"a": 1.0}) == {"a": 1.0}


def _same_types(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_types(a[k], b[k]) for k in a)
    return type(a) is type(b)
