def test_health_routes_answer_ok(client):
    for path in ("/api/health", "/api/health/live", "/api/health/ready"):
        resp = client.get(path)
        assert resp.status_code == 200, path
        assert resp.get_json() == {"status": "ok"}
