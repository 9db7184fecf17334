"""Qdrant's REST API as mnemo serves it (`mnemo serve --qdrant-api`), proven with Qdrant's own
clients against the real Qdrant server: the same workload runs through `qdrant-client`,
LangChain's `QdrantVectorStore` and LlamaIndex's `QdrantVectorStore` against both servers, and
must give the same answers (same ids, same order, scores within 1e-5). Vectors come from
mnemo's `/v1/embeddings` (through the official `openai` client and LangChain's
`OpenAIEmbeddings`), so both servers hold the same ones. Then what only mnemo does: documents
(`{"text", "model"}`) embedded by the server, and keys.

    python test_qdrant_api.py MNEMO_BINARY SHARED_DIR
"""

import hashlib
import json
import lzma
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import warnings

from openai import OpenAI
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

MODEL = "all-MiniLM-L6-v2"
TOLERANCE = 1e-5

TEXTS = [
    "Ajouter un cache LRU pour les embeddings des requêtes",
    "Écrire la documentation de l'API REST",
    "Migrer la base de données vers PostgreSQL 16",
    "Mettre en place la surveillance Prometheus et les alertes",
    "Corriger la fuite mémoire du serveur de recherche",
    "Indexer les plans Markdown dans Qdrant",
    "Add retries with backoff to the embedding client",
    "Write integration tests for the snapshot restore",
    "Benchmark the HNSW index against a full scan",
    "Replace the Python scripts with one Rust binary",
    "Configurer TLS pour le serveur HTTP",
    "Déployer le service avec systemd et un utilisateur dédié",
    "Nettoyer les anciens journaux d'événements",
    "Ajouter la recherche hybride par mots-clés et par sens",
    "Measure recall at 10 on the shared corpus",
    "Support sparse vectors with IDF for BM25",
    "Refuse requests larger than the body limit",
    "Expose the memory service over MCP",
    "Translate the user interface into English",
    "Détecter les tâches en double entre les plans",
]
QUERIES = [
    "cache des embeddings",
    "monitoring and alerting",
    "duplicate tasks across plans",
    "sécurité HTTPS",
]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url, process, what, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer {url}")


def qdrant_binary(shared):
    """The shared Qdrant server, unpacked once (beside the Rust tests' copy) and verified."""
    folder = os.path.join(shared, "qdrant")
    with open(os.path.join(folder, "SHA256SUMS")) as listing:
        sums = listing.read().split()
    expected = sums[sums.index("qdrant") - 1]
    cache = os.path.join(tempfile.gettempdir(), f"mnemo-qdrant-{expected[:16]}")
    binary = os.path.join(cache, "qdrant")
    if os.path.isfile(binary):
        return binary
    os.makedirs(cache, exist_ok=True)
    partial = f"{binary}.{os.getpid()}.partial"
    with lzma.open(os.path.join(folder, "qdrant.xz")) as packed, open(partial, "wb") as out:
        shutil.copyfileobj(packed, out)
    digest = hashlib.sha256(open(partial, "rb").read()).hexdigest()
    if digest != expected:
        os.remove(partial)
        raise SystemExit(f"the unpacked Qdrant's sha256 is {digest}, SHA256SUMS says {expected}")
    os.chmod(partial, 0o755)
    os.rename(partial, binary)
    return binary


def start_qdrant(shared, work):
    port = free_port()
    env = dict(
        os.environ,
        QDRANT__SERVICE__HOST="127.0.0.1",
        QDRANT__SERVICE__HTTP_PORT=str(port),
        QDRANT__SERVICE__GRPC_PORT=str(free_port()),
        QDRANT__STORAGE__STORAGE_PATH=os.path.join(work, "qdrant-storage"),
        QDRANT__STORAGE__SNAPSHOTS_PATH=os.path.join(work, "qdrant-snapshots"),
        QDRANT__TELEMETRY_DISABLED="true",
    )
    log = open(os.path.join(work, "qdrant.log"), "w")
    process = subprocess.Popen(
        [qdrant_binary(shared), "--config-path", os.path.join(shared, "qdrant", "config.yaml")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=work,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/readyz", process, "the Qdrant server")
    return process, url


def start_mnemo(binary, work, name, env=None):
    port = free_port()
    out = open(os.path.join(work, f"{name}.out"), "w+")
    # The hostile-input pass sends ~9,000 requests in a few seconds: above the default rate.
    config = os.path.join(work, f"{name}.toml")
    with open(config, "w") as settings:
        settings.write("[rate_limit]\nper_second = 100000.0\nburst = 100000.0\n")
    process = subprocess.Popen(
        [binary, "serve", "--bind", "127.0.0.1:0", "--qdrant-api", f"127.0.0.1:{port}",
         "--data-dir", os.path.join(work, name), "--config", config],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, **(env or {})),
    )
    deadline = time.monotonic() + 60
    rest = None
    while time.monotonic() < deadline and rest is None:
        out.seek(0)
        for line in out.read().splitlines():
            if line.startswith("listening on "):
                rest = line.removeprefix("listening on ").strip()
        if process.poll() is not None:
            out.seek(0)
            raise SystemExit(f"mnemo serve exited: {out.read()}")
        time.sleep(0.1)
    if rest is None:
        raise SystemExit("mnemo serve did not start")
    return process, rest, f"http://127.0.0.1:{port}"


def client_for(url, **options):
    """A client, and whether it warned about the server (its version check)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = QdrantClient(url=url, timeout=60, **options)
        client.get_collections()
    complaints = [str(w.message) for w in caught if "version" in str(w.message).lower()]
    return client, complaints


def hits(points):
    return [(point.id, point.score) for point in points]


def same(what, mnemo, qdrant):
    """Same scores rank by rank (within TOLERANCE), and the same ids in the same order, except
    that points tied on a score may come in either order, and a tie at the end of the list may
    be cut at a different member (either is a right top k)."""
    problem = None
    if len(mnemo) != len(qdrant):
        problem = f"{len(mnemo)} results from mnemo, {len(qdrant)} from Qdrant"
    elif any(abs(a[1] - b[1]) > TOLERANCE for a, b in zip(mnemo, qdrant)):
        problem = "scores differ"
    else:
        start = 0
        while start < len(mnemo):
            end = start
            while end + 1 < len(mnemo) and abs(mnemo[end + 1][1] - mnemo[start][1]) <= TOLERANCE:
                end += 1
            ours = {point for point, _ in mnemo[start:end + 1]}
            theirs = {point for point, _ in qdrant[start:end + 1]}
            if ours != theirs and end + 1 < len(mnemo):
                problem = f"ranks {start}..{end} hold other points"
                break
            start = end + 1
    if problem:
        raise AssertionError(f"{what}: {problem}\n  mnemo:  {mnemo}\n  Qdrant: {qdrant}")


def client_workload(client, vectors, query_vectors):
    """What qdrant-client programs do; returns every answer, to compare."""
    out = {}
    name = "notes"
    assert not client.collection_exists(name)
    client.create_collection(name, vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE))
    assert client.collection_exists(name)
    info = client.get_collection(name)
    out["info"] = (info.config.params.vectors.size, info.config.params.vectors.distance, info.points_count)
    half = len(TEXTS) // 2
    client.upsert(name, wait=True, points=[
        models.PointStruct(id=index, vector=vectors[index],
                           payload={"text": TEXTS[index], "status": "open" if index % 3 else "done",
                                    "priority": index % 4, "tags": ["plan", f"p{index % 4}"]})
        for index in range(half)
    ])
    ids = [str(uuid.UUID(int=index + 1)) for index in range(half, len(TEXTS))]
    client.upsert(name, points=models.Batch(
        ids=ids,
        vectors=[vectors[index] for index in range(half, len(TEXTS))],
        payloads=[{"text": TEXTS[index], "status": "open", "priority": index % 4} for index in range(half, len(TEXTS))],
    ))
    client.create_payload_index(name, "status", models.PayloadSchemaType.KEYWORD)
    out["count"] = client.count(name).count
    out["count_open"] = client.count(name, count_filter=models.Filter(
        must=[models.FieldCondition(key="status", match=models.MatchValue(value="open"))])).count
    open_only = models.Filter(must=[models.FieldCondition(key="status", match=models.MatchValue(value="open"))])
    for index, query in enumerate(query_vectors):
        out[f"query{index}"] = hits(client.query_points(name, query=query, limit=5).points)
        out[f"query{index}_filtered"] = hits(client.query_points(
            name, query=query, limit=5, query_filter=open_only, with_payload=True).points)
        out[f"query{index}_threshold"] = hits(client.query_points(
            name, query=query, limit=10, score_threshold=0.2).points)
        out[f"query{index}_offset"] = hits(client.query_points(name, query=query, limit=3, offset=2).points)
        out[f"query{index}_range"] = hits(client.query_points(name, query=query, limit=5, query_filter=models.Filter(
            must=[models.FieldCondition(key="priority", range=models.Range(gte=1, lt=3))],
            must_not=[models.FieldCondition(key="tags", match=models.MatchAny(any=["p2"]))])).points)
    out["by_id"] = hits(client.query_points(name, query=3, limit=4).points)
    out["rrf"] = hits(client.query_points(name, prefetch=[
        models.Prefetch(query=query_vectors[0], limit=8),
        models.Prefetch(query=query_vectors[1], limit=8),
    ], query=models.FusionQuery(fusion=models.Fusion.RRF), limit=6).points)
    out["dbsf"] = hits(client.query_points(name, prefetch=[
        models.Prefetch(query=query_vectors[0], limit=8),
        models.Prefetch(query=query_vectors[2], limit=8, filter=open_only),
    ], query=models.FusionQuery(fusion=models.Fusion.DBSF), limit=6).points)
    out["rescore"] = hits(client.query_points(name, prefetch=models.Prefetch(query=query_vectors[0], limit=10),
                                              query=query_vectors[1], limit=4).points)
    out["recommend"] = hits(client.query_points(name, query=models.RecommendQuery(
        recommend=models.RecommendInput(positive=[0, 1], negative=[2])), limit=5).points)
    batch = client.query_batch_points(name, requests=[
        models.QueryRequest(query=query, limit=3, filter=open_only) for query in query_vectors])
    out["batch"] = [hits(answer.points) for answer in batch]
    records = client.retrieve(name, ids=[1, ids[0], 999], with_payload=True, with_vectors=True)
    out["retrieve"] = [(r.id, r.payload["text"], round(sum(r.vector), 4)) for r in records]
    pages, offset = [], None
    while True:
        page, offset = client.scroll(name, limit=7, offset=offset, with_payload=["status"])
        pages.append([(r.id, r.payload) for r in page])
        if offset is None:
            break
    out["scroll"] = pages
    client.set_payload(name, payload={"owner": "ana"}, points=[0, 1])
    client.overwrite_payload(name, payload={"text": "replaced"}, points=[2])
    client.delete_payload(name, keys=["tags"], points=[3])
    client.clear_payload(name, points_selector=models.PointIdsList(points=[4]))
    client.set_payload(name, payload={"reviewed": True}, points=models.Filter(
        must=[models.FieldCondition(key="priority", match=models.MatchValue(value=1))]))
    out["payloads"] = [(r.id, r.payload) for r in client.retrieve(name, ids=[0, 1, 2, 3, 4, 5, 9])]
    client.delete(name, points_selector=models.PointIdsList(points=[0, 1]))
    client.delete(name, points_selector=models.FilterSelector(filter=models.Filter(
        must=[models.FieldCondition(key="status", match=models.MatchValue(value="done"))])))
    out["after_delete"] = (client.count(name).count, hits(client.query_points(name, query=query_vectors[0], limit=5).points))

    # Named dense and sparse vectors, vector updates, and aliases.
    hybrid = "hybrid"
    client.create_collection(
        hybrid,
        vectors_config={"dense": models.VectorParams(size=384, distance=models.Distance.DOT)},
        sparse_vectors_config={"words": models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    def words(text):
        indices = sorted({int(hashlib.md5(w.lower().encode()).hexdigest()[:6], 16) for w in text.split()})
        return models.SparseVector(indices=indices, values=[1.0] * len(indices))
    client.upsert(hybrid, points=[
        models.PointStruct(id=index, vector={"dense": vectors[index], "words": words(TEXTS[index])},
                           payload={"text": TEXTS[index]})
        for index in range(len(TEXTS))
    ])
    info = client.get_collection(hybrid)
    out["hybrid_info"] = (info.config.params.vectors["dense"].size, sorted(info.config.params.sparse_vectors))
    out["sparse"] = hits(client.query_points(hybrid, query=words("Ajouter la recherche par mots-clés"),
                                             using="words", limit=5).points)
    out["hybrid_rrf"] = hits(client.query_points(hybrid, prefetch=[
        models.Prefetch(query=query_vectors[0], using="dense", limit=10),
        models.Prefetch(query=words("cache des embeddings"), using="words", limit=10),
    ], query=models.FusionQuery(fusion=models.Fusion.RRF), limit=5).points)
    client.update_vectors(hybrid, points=[models.PointVectors(id=5, vector={"dense": vectors[0]})])
    out["updated_vector"] = hits(client.query_points(hybrid, query=vectors[0], using="dense", limit=2).points)
    client.delete_vectors(hybrid, vectors=["words"], points=[6])
    out["deleted_vector"] = sorted(client.retrieve(hybrid, ids=[6], with_vectors=True)[0].vector)
    client.update_collection_aliases(change_aliases_operations=[
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=name, alias_name="current")),
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=hybrid, alias_name="other")),
    ])
    out["via_alias"] = hits(client.query_points("current", query=query_vectors[0], limit=3).points)
    client.update_collection_aliases(change_aliases_operations=[
        models.RenameAliasOperation(rename_alias=models.RenameAlias(old_alias_name="other", new_alias_name="renamed")),
        models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="current")),
    ])
    out["aliases"] = sorted((a.alias_name, a.collection_name) for a in client.get_aliases().aliases)
    out["collection_aliases"] = [a.alias_name for a in client.get_collection_aliases(hybrid).aliases]
    try:
        client.get_collection("missing")
        out["missing"] = "no error"
    except UnexpectedResponse as err:
        out["missing"] = err.status_code
    try:
        client.upsert(name, points=[models.PointStruct(id=100, vector=[0.1, 0.2])])
        out["wrong_dimension"] = "no error"
    except UnexpectedResponse as err:
        out["wrong_dimension"] = err.status_code
    try:
        client.create_collection(name, vectors_config=models.VectorParams(size=3, distance=models.Distance.COSINE))
        out["exists"] = "no error"
    except UnexpectedResponse as err:
        out["exists"] = err.status_code
    out["deleted"] = (client.delete_collection(hybrid), client.collection_exists(hybrid))
    return out


def compare(mnemo, qdrant):
    for key in qdrant:
        ours, theirs = mnemo[key], qdrant[key]
        if key.startswith(("query", "by_id", "rrf", "dbsf", "rescore", "recommend", "sparse", "hybrid_rrf",
                           "updated_vector", "via_alias")):
            same(key, ours, theirs)
        elif key == "batch":
            for index, (a, b) in enumerate(zip(ours, theirs)):
                same(f"batch[{index}]", a, b)
        elif key == "after_delete":
            assert ours[0] == theirs[0], (key, ours, theirs)
            same(key, ours[1], theirs[1])
        else:
            assert ours == theirs, f"{key} differs\n  mnemo:  {ours}\n  Qdrant: {theirs}"
    print(f"qdrant-client: {len(qdrant)} answers the same from mnemo and from Qdrant")


def langchain_workload(url, rest):
    from langchain_openai import OpenAIEmbeddings
    from langchain_qdrant import QdrantVectorStore

    embeddings = OpenAIEmbeddings(model=MODEL, base_url=f"{rest}/v1", api_key="unused",
                                  check_embedding_ctx_length=False)
    metadatas = [{"status": "open" if index % 3 else "done", "n": index} for index in range(len(TEXTS))]
    ids = [str(uuid.UUID(int=index + 1000)) for index in range(len(TEXTS))]
    store = QdrantVectorStore.from_texts(TEXTS, embeddings, metadatas=metadatas, ids=ids, url=url,
                                         collection_name="langchain")
    out = {}
    for index, query in enumerate(QUERIES):
        found = store.similarity_search_with_score(query, k=4)
        out[f"search{index}"] = [(doc.metadata["_id"], score) for doc, score in found]
        filtered = store.similarity_search_with_score(query, k=4, filter=models.Filter(must=[
            models.FieldCondition(key="metadata.status", match=models.MatchValue(value="open"))]))
        out[f"filtered{index}"] = [(doc.metadata["_id"], score) for doc, score in filtered]
        out[f"mmr{index}"] = [doc.page_content for doc in store.max_marginal_relevance_search(query, k=3, fetch_k=8)]
    store.delete(ids=ids[:5])
    reopened = QdrantVectorStore.from_existing_collection(embedding=embeddings, collection_name="langchain", url=url)
    out["reopened"] = [(doc.metadata["_id"], score) for doc, score in reopened.similarity_search_with_score(QUERIES[0], k=4)]
    assert all(doc_id not in ids[:5] for doc_id, _ in out["reopened"])
    return out


def llama_workload(url, rest):
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.core.schema import TextNode, NodeRelationship, RelatedNodeInfo
    from llama_index.core.vector_stores.types import (
        FilterOperator, MetadataFilter, MetadataFilters, VectorStoreQuery, VectorStoreQueryMode)
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    openai = OpenAI(base_url=f"{rest}/v1", api_key="unused")

    def embed(texts):
        return [item.embedding for item in openai.embeddings.create(model=MODEL, input=texts).data]

    class MnemoEmbedding(BaseEmbedding):
        def _get_text_embedding(self, text):
            return embed([text])[0]

        def _get_query_embedding(self, query):
            return embed([query])[0]

        async def _aget_query_embedding(self, query):
            return embed([query])[0]

    model = MnemoEmbedding()
    nodes = []
    for index, text in enumerate(TEXTS):
        node = TextNode(text=text, id_=str(uuid.UUID(int=index + 5000)),
                        metadata={"status": "open" if index % 3 else "done", "n": index})
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc{index % 5}")
        node.embedding = model.get_text_embedding(text)
        nodes.append(node)
    client = QdrantClient(url=url, timeout=60)
    store = QdrantVectorStore(client=client, collection_name="llama")
    store.add(nodes)
    out = {}
    for index, query in enumerate(QUERIES):
        vector = model.get_query_embedding(query)
        found = store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=4))
        out[f"search{index}"] = list(zip(found.ids, found.similarities))
        filtered = store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=4, filters=MetadataFilters(
            filters=[MetadataFilter(key="status", value="open", operator=FilterOperator.EQ)])))
        out[f"filtered{index}"] = list(zip(filtered.ids, filtered.similarities))
        mmr = store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=3,
                                           mode=VectorStoreQueryMode.MMR, mmr_threshold=0.5))
        out[f"mmr{index}"] = list(mmr.ids)
    store.delete(ref_doc_id="doc0")
    reopened = QdrantVectorStore(client=QdrantClient(url=url, timeout=60), collection_name="llama")
    found = reopened.query(VectorStoreQuery(query_embedding=model.get_query_embedding(QUERIES[0]), similarity_top_k=20))
    out["reopened"] = list(zip(found.ids, found.similarities))
    assert len(found.ids) == len(TEXTS) - 4, found.ids
    return out


def compare_stores(what, mnemo, qdrant):
    for key in qdrant:
        if key.startswith("mmr"):
            assert mnemo[key] == qdrant[key], f"{what} {key}: {mnemo[key]} != {qdrant[key]}"
        else:
            same(f"{what} {key}", mnemo[key], qdrant[key])
    print(f"{what}: {len(qdrant)} answers the same from mnemo and from Qdrant")


def mnemo_only(url, rest, vectors):
    """Documents embedded by the server: no embedding code in the client at all."""
    client, _ = client_for(url, cloud_inference=True)
    document = lambda text: models.Document(text=text, model=f"sentence-transformers/{MODEL}")
    client.create_collection("docs", vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE))
    client.upsert("docs", points=[models.PointStruct(id=index, vector=document(text), payload={"text": text})
                                  for index, text in enumerate(TEXTS)])
    stored = client.retrieve("docs", ids=[0], with_vectors=True)[0].vector
    cosine = sum(a * b for a, b in zip(stored, vectors[0]))
    assert cosine > 0.99999, f"a document's vector differs from /v1/embeddings' (cosine {cosine})"
    by_text = client.query_points("docs", query=document(QUERIES[0]), limit=3).points
    by_vector = client.query_points("docs", query=vectors_of(rest, [QUERIES[0]])[0], limit=3).points
    assert [p.id for p in by_text] == [p.id for p in by_vector], (by_text, by_vector)
    try:
        client.query_points("docs", query=models.Document(text="x", model="no-such-model"))
        raise AssertionError("an unknown model was accepted")
    except UnexpectedResponse as err:
        assert err.status_code == 404 and "no-such-model" in str(err), err
    with urllib.request.urlopen(url) as answer:
        assert b"mnemo" in answer.read()
    print("documents: embedded by mnemo, the same vectors as /v1/embeddings; unknown model 404")


ROUTES = [
    ("PUT", "/collections/{c}"), ("PATCH", "/collections/{c}"), ("GET", "/collections/{c}"),
    ("POST", "/collections/aliases"), ("PUT", "/collections/{c}/index"),
    ("PUT", "/collections/{c}/points"), ("POST", "/collections/{c}/points"),
    ("GET", "/collections/{c}/points/1"), ("GET", "/collections/{c}/points/x"),
    ("POST", "/collections/{c}/points/delete"), ("POST", "/collections/{c}/points/payload"),
    ("PUT", "/collections/{c}/points/payload"), ("POST", "/collections/{c}/points/payload/delete"),
    ("POST", "/collections/{c}/points/payload/clear"), ("PUT", "/collections/{c}/points/vectors"),
    ("POST", "/collections/{c}/points/vectors/delete"), ("POST", "/collections/{c}/points/scroll"),
    ("POST", "/collections/{c}/points/count"), ("POST", "/collections/{c}/points/search"),
    ("POST", "/collections/{c}/points/search/batch"), ("POST", "/collections/{c}/points/recommend"),
    ("POST", "/collections/{c}/points/query"), ("POST", "/collections/{c}/points/query/batch"),
    ("POST", "/collections/{c}/snapshots"), ("GET", "/collections/{c}/snapshots/none"),
    ("DELETE", "/collections/{c}/index/f"), ("POST", "/cluster"), ("GET", "/telemetry"),
]


def hostile_bodies(random):
    """Well-formed JSON that is wrong in every way a client gets it wrong, and some that is not
    JSON at all: wrong types, huge numbers, deep nesting, prefetches without end."""
    def value(depth=0):
        kinds = [lambda: None, lambda: True, lambda: -1, lambda: 2**70, lambda: 1e308,
                 lambda: "x" * random.randrange(40),
                 lambda: [random.random() for _ in range(random.randrange(500))],
                 lambda: [value(depth + 1) for _ in range(random.randrange(4))],
                 lambda: {key: value(depth + 1) for key in random.sample(KEYS, random.randrange(4))}]
        return kinds[random.randrange(len(kinds) if depth < 4 else len(kinds) - 2)]()
    bodies = [b"", b"{", b"[]", b"null", b"\xff\xfe", b'{"points": "' + b"a" * 100000 + b'"}']
    nested = {"query": [0.1] * 384}
    for _ in range(30):
        nested = {"prefetch": nested, "query": {"fusion": "rrf"}}
    filter_deep = {"must": []}
    for _ in range(70):
        filter_deep = {"must": [filter_deep]}
    targeted = [
        {"points": [{"id": -1, "vector": [1]}]}, {"points": [{"id": 1, "vector": {"text": 5}}]},
        {"points": [{"id": 1, "vector": [[0.1, 0.2]]}]}, {"batch": {"ids": [1, 2], "vectors": [[0.1]]}},
        {"query": [0.1] * 384, "limit": 2**63}, {"query": [0.1] * 384, "limit": 0},
        {"query": {"nearest": [0.1] * 384, "mmr": {"diversity": 7}}}, {"query": {"rrf": {"k": 0}}},
        {"query": {"recommend": {"positive": []}}}, {"query": 10**30}, {"query": "not-an-id"},
        {"query": {"text": "", "model": "all-MiniLM-L6-v2"}}, nested, {"filter": filter_deep},
        {"vectors": {"size": 0, "distance": "Cosine"}}, {"vectors": {"size": 2**40, "distance": "Cosine"}},
        {"actions": [{"create_alias": {"alias_name": "../x", "collection_name": "fuzz"}}]},
        {"field_name": "a", "field_schema": "geo"}, {"searches": [{}] * 5000},
        {"ids": list(range(5000))}, {"limit": 10**9}, {"offset": {"x": 1}},
    ]
    for body in targeted:
        bodies.append(json.dumps(body).encode())
    for _ in range(40):
        bodies.append(json.dumps({key: value() for key in random.sample(KEYS, random.randrange(1, 5))}).encode())
    return bodies


KEYS = ["points", "batch", "ids", "vector", "vectors", "payload", "filter", "query", "prefetch",
        "limit", "offset", "with_payload", "with_vector", "using", "searches", "positive", "negative",
        "keys", "score_threshold", "params", "actions", "field_name", "field_schema", "sparse_vectors"]


def hostile(url):
    """Every route against hostile bodies: each answered 2xx or 4xx in Qdrant's error shape,
    never a 5xx, and the server still serves after."""
    import random as randomness
    random = randomness.Random(20261208)
    request = lambda method, path, body=None: urllib.request.Request(
        url + path, data=body, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request("PUT", "/collections/fuzz", json.dumps(
            {"vectors": {"size": 384, "distance": "Cosine"}}).encode())):
        pass
    bodies = hostile_bodies(random)
    count = 0
    for method, template in ROUTES:
        for collection in ["fuzz", "missing", "b%2Fad"]:
            for body in bodies if method != "GET" else [None]:
                path = template.replace("{c}", collection)
                try:
                    with urllib.request.urlopen(request(method, path, body), timeout=60) as answer:
                        status, text = answer.status, answer.read()
                except urllib.error.HTTPError as err:
                    status, text = err.code, err.read()
                count += 1
                if status >= 500 or status == 429:
                    raise AssertionError(f"{method} {path} answered {status} to {body[:200]!r}: {text[:300]!r}")
                if status >= 400 and path != "/collections/fuzz/snapshots/none":
                    error = json.loads(text)["status"]["error"]
                    assert error, (method, path, text)
    with urllib.request.urlopen(url + "/collections/fuzz") as answer:
        assert answer.status == 200
    print(f"hostile input: {count} requests, none answered 5xx; the server still serves")


def vectors_of(rest, texts):
    openai = OpenAI(base_url=f"{rest}/v1", api_key="unused")
    return [item.embedding for item in openai.embeddings.create(model=MODEL, input=texts).data]


def keys(binary, work):
    """mnemo's keys through Qdrant's `api-key` header: none refused, the right one served."""
    process, _, url = start_mnemo(binary, work, "keyed", env={"MNEMO_API_KEY": "s3cret"})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "an API key over plain HTTP": loopback here
            refused = QdrantClient(url=url, timeout=30)
            try:
                refused.get_collections()
                raise AssertionError("a request without a key was served")
            except UnexpectedResponse as err:
                assert err.status_code == 401, err
            QdrantClient(url=url, api_key="s3cret", timeout=30).get_collections()
        print("keys: 401 without, served with `api-key`")
    finally:
        process.kill()
        process.wait()


def main():
    binary, shared = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as work:
        qdrant, qdrant_url = start_qdrant(shared, work)
        mnemo, rest, mnemo_url = start_mnemo(binary, work, "mnemo")
        try:
            vectors = vectors_of(rest, TEXTS)
            query_vectors = vectors_of(rest, QUERIES)
            ours, complaints = client_for(mnemo_url)
            assert not complaints, f"qdrant-client complained about mnemo: {complaints}"
            theirs, _ = client_for(qdrant_url)
            compare(client_workload(ours, vectors, query_vectors),
                    client_workload(theirs, vectors, query_vectors))
            compare_stores("LangChain", langchain_workload(mnemo_url, rest), langchain_workload(qdrant_url, rest))
            compare_stores("LlamaIndex", llama_workload(mnemo_url, rest), llama_workload(qdrant_url, rest))
            mnemo_only(mnemo_url, rest, vectors)
            hostile(mnemo_url)
        finally:
            mnemo.terminate()
            qdrant.kill()
            mnemo.wait(timeout=60)
            qdrant.wait()
        keys(binary, work)
    print("Qdrant's API: passed")


if __name__ == "__main__":
    main()
