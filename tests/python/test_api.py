"""mnemo serve against the tools its users bring: the official `openai` client, an OpenAPI
validator, and schemathesis (run from run.sh).

Usage: test_api.py BASE_URL MNEMO_BINARY
"""

import json
import math
import subprocess
import sys
import urllib.request

from openai import OpenAI
from openapi_spec_validator import validate

TEXTS = [
    "Ajouter un cache LRU aux requêtes d'embedding",
    "Write the API documentation",
    "Mesurer la latence p99 du serveur à 64 clients",
    "é" * 3000,  # longer than the model's 256 tokens: truncated the same way on both paths
]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def cli_embeddings(binary, model="all-MiniLM-L6-v2"):
    lines = "".join(json.dumps({"text": text}) + "\n" for text in TEXTS)
    out = subprocess.run(
        [binary, "embed", "--model", model], input=lines, capture_output=True, text=True, check=True
    ).stdout
    return [json.loads(line)["embedding"] for line in out.splitlines()]


def check_openai_client(base, binary):
    client = OpenAI(base_url=f"{base}/v1", api_key="unused-on-loopback")
    expected = cli_embeddings(binary)
    lowest = 1.0
    # Left unsaid, the client asks for base64 and decodes it itself; "float" asks for lists.
    for encoding in ("client default (base64)", "float"):
        options = {"encoding_format": "float"} if encoding == "float" else {}
        response = client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS, **options)
        assert len(response.data) == len(TEXTS), response
        assert response.usage.prompt_tokens > 0, response.usage
        for item, want in zip(response.data, expected):
            assert len(item.embedding) == 384
            similarity = cosine(item.embedding, want)
            assert similarity >= 0.9999, (encoding, item.index, similarity)
            lowest = min(lowest, similarity)
    one = client.embeddings.create(model="sentence-transformers/all-MiniLM-L6-v2", input=TEXTS[0])
    assert cosine(one.data[0].embedding, expected[0]) >= 0.9999
    try:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    except Exception as error:  # the client raises NotFoundError for our 404
        assert getattr(error, "status_code", None) == 404, error
    else:
        raise AssertionError("another model was accepted")
    # The second model: loaded by the server at this first request, listed by /v1/models.
    listed = {model.id for model in client.models.list().data}
    assert {"all-MiniLM-L6-v2", "all-mpnet-base-v2"} <= listed, listed
    mpnet = client.embeddings.create(model="sentence-transformers/all-mpnet-base-v2", input=TEXTS)
    assert mpnet.model == "all-mpnet-base-v2", mpnet.model
    expected_mpnet = cli_embeddings(binary, "all-mpnet-base-v2")
    for item, want in zip(mpnet.data, expected_mpnet):
        assert len(item.embedding) == 768
        assert cosine(item.embedding, want) >= 0.9999, item.index
    version = __import__("openai").__version__
    print(f"openai {version}: {len(TEXTS)} texts, base64 and float, both models; lowest cosine vs mnemo embed {lowest:.9f}")


def check_openapi_document(base):
    with urllib.request.urlopen(f"{base}/openapi.json") as response:
        document = json.load(response)
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    operations = sum(
        1 for item in document["paths"].values() for method in item if method in ("get", "put", "post", "delete")
    )
    print(f"openapi.json: valid OpenAPI {document['openapi']}, {operations} operations")


def check_event_stream(base):
    """The event stream as a plain HTTP client reads it: `collection.created` of the setup's
    collection arrives with the id the paged list gives it."""
    with urllib.request.urlopen(f"{base}/api/v1/events?type=collection.created") as response:
        listed = json.load(response)["events"]
    assert listed, "the setup's collection.created is in the log"
    request = urllib.request.Request(
        f"{base}/api/v1/events/stream?type=collection", headers={"Last-Event-ID": "0"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        fields = {}
        for raw in response:
            line = raw.decode().rstrip("\n")
            if not line:
                break
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    assert int(fields["id"]) == listed[0]["id"], fields
    assert fields["event"] == "collection.created", fields
    assert json.loads(fields["data"])["subject"] == "notes", fields
    print(f"event stream: event {fields['id']} ({fields['event']}) as listed")


if __name__ == "__main__":
    base_url, mnemo = sys.argv[1], sys.argv[2]
    check_openapi_document(base_url)
    check_event_stream(base_url)
    check_openai_client(base_url, mnemo)
