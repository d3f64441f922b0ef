"""Any JSON in any place of a namespace body: a clear 4xx and nothing stored, or stored exactly.

Generated bodies replace one value (or object key) of a full namespace body with arbitrary JSON,
text the databases cannot store, or text over its bound. The answer is never a 5xx; a 201 is
read back unchanged, anything else leaves no namespace behind.
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from tests.faults.hostile import STORABLE, UNSTORABLE, inject, longer_than
from tests.metadefs.conftest import NS, without_stamps
from tests.metadefs.test_namespaces import FULL

EXAMPLES = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | STORABLE,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(STORABLE, inner, max_size=3),
                           max_leaves=6)
BODIES = st.one_of(inject(FULL, bad=st.one_of(UNSTORABLE, longer_than(80), longer_than(500), STORABLE)),
                   inject(FULL, bad=JSON_VALUES.filter(lambda v: isinstance(v, str)), keys=True),
                   st.tuples(st.sampled_from(sorted(FULL)), JSON_VALUES).map(lambda kv: {**FULL, kv[0]: kv[1]}))


@EXAMPLES
@given(body=BODIES)
def test_any_namespace_body(api, body):
    response = api().post(NS, body)
    assert response.status_code in (201, 400, 403, 409), (body, response.get_data(as_text=True))
    assert response.get_json()  # a JSON answer with a message or the namespace
    name = body.get("namespace")
    if response.status_code == 201:
        shown = api().get(f"{NS}/{name}")
        assert shown.status_code == 200
        stored = without_stamps(shown.get_json())
        assert stored == without_stamps(response.get_json())
        assert api().put(f"{NS}/{name}", {"namespace": name}).status_code == 200  # unprotected
        assert api().delete(f"{NS}/{name}").status_code == 204
    listed = api().get(f"{NS}?limit=1000").get_json()["namespaces"]
    assert listed == [], listed
