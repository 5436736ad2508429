"""schemathesis against the service's OpenAPI spec: generated requests (valid and not)
get answers that conform to the spec, and never a server error. The spec needs no
model: scripted agents answer."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from personasim.serve import AgentService, ServeSettings, create_app

KEY = "schema-key"


def test_every_route_conforms_to_its_spec(scripted_agents, trained_run):
    service = AgentService(scripted_agents, trained_run)
    service.load_activity()
    app = create_app(service, ServeSettings(api_keys=[KEY], batch_window_ms=0))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /v1/rate",
        "POST /v1/watch",
        "POST /v1/sessions",
        "GET /v1/personas",
        "GET /healthz",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
        def conforms(case):
            case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"})

        conforms()
