"""A fake Hugging Face Hub on 127.0.0.1 that speaks the HTTP routes `huggingface_hub` uses to create a
repository, commit files (preupload, ndjson commit, tree listing for deletions) and download a file.

Every request is recorded; `repos` holds each repository's files after its commits; `commits` the
commits as received. Files are always uploaded "regular" (inline, base64), never through LFS.
"""
from __future__ import annotations

import base64
import hashlib
import json

from aiohttp import web
from loopback import LoopbackServer


class FakeHub(LoopbackServer):
    def __init__(self, token: str = "hf_fake_token_for_tests"):
        self.token = token
        self.repos: dict[str, dict[str, bytes]] = {}
        self.private: dict[str, bool] = {}
        self.commits: list[dict] = []
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, headers)
        super().__init__()

    def middlewares(self) -> list:
        return [self._record]

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/repos/create", self._create)
        app.router.add_post("/api/validate-yaml", self._validate_yaml)
        app.router.add_post("/api/datasets/{ns}/{name}/preupload/{rev}", self._preupload)
        app.router.add_post("/api/datasets/{ns}/{name}/commit/{rev}", self._commit)
        app.router.add_get("/api/datasets/{ns}/{name}/tree/{rev}", self._tree)
        app.router.add_route("*", "/datasets/{ns}/{name}/resolve/{rev}/{path:.*}", self._resolve)

    def add_file(self, repo_id: str, path: str, content: bytes) -> None:
        self.repos.setdefault(repo_id, {})[path] = content

    # -- handlers
    @web.middleware
    async def _record(self, request, handler):
        self.requests.append((request.method, request.path, dict(request.headers)))
        writes = request.method == "POST" and request.path != "/api/validate-yaml"
        if writes and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "Invalid credentials in Authorization header"}, status=401)
        return await handler(request)

    @staticmethod
    def _repo_id(request) -> str:
        return f"{request.match_info['ns']}/{request.match_info['name']}"

    async def _create(self, request):
        body = await request.json()
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        if repo_id in self.repos:
            return web.json_response({"error": "You already created this dataset repo",
                                      "url": f"{self.url}/datasets/{repo_id}"}, status=409)
        self.repos[repo_id] = {}
        self.private[repo_id] = body.get("private") is True or body.get("visibility") == "private"
        return web.json_response({"url": f"{self.url}/datasets/{repo_id}", "name": repo_id})

    async def _validate_yaml(self, request):
        return web.json_response({"errors": [], "warnings": []})

    async def _preupload(self, request):
        body = await request.json()
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in body["files"]]
        return web.json_response({"files": files, "commitOid": "0" * 40})

    async def _commit(self, request):
        repo_id = self._repo_id(request)
        if repo_id not in self.repos:
            return web.json_response({"error": "Repository not found"}, status=404)
        lines = [json.loads(line) for line in (await request.read()).decode().splitlines() if line.strip()]
        files = self.repos[repo_id]
        for line in lines:
            value = line["value"]
            if line["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"]) if value.get("encoding") == "base64" \
                    else value["content"].encode()
            elif line["key"] == "deletedFile":
                files.pop(value["path"], None)
            elif line["key"] == "deletedFolder":
                for path in [p for p in files if p.startswith(value["path"].rstrip("/") + "/")]:
                    del files[path]
            elif line["key"] == "lfsFile":
                return web.json_response({"error": "this fake Hub takes regular uploads only"}, status=400)
        self.commits.append({"repo_id": repo_id, "lines": lines})
        oid = hashlib.sha1(str(len(self.commits)).encode()).hexdigest()
        return web.json_response({"commitUrl": f"{self.url}/datasets/{repo_id}/commit/{oid}", "commitOid": oid,
                                  "pullRequestUrl": None})

    async def _tree(self, request):
        files = self.repos.get(self._repo_id(request))
        if files is None:
            return web.json_response({"error": "Repository not found"}, status=404)
        return web.json_response([{"type": "file", "path": path, "size": len(content),
                                   "oid": hashlib.sha1(content).hexdigest()} for path, content in files.items()])

    async def _resolve(self, request):
        content = self.repos.get(self._repo_id(request), {}).get(request.match_info["path"])
        if content is None:
            return web.json_response({"error": "Entry not found"}, status=404, headers={"X-Error-Code": "EntryNotFound"})
        headers = {"X-Repo-Commit": "1" * 40, "ETag": f'"{hashlib.sha1(content).hexdigest()}"',
                   "Content-Length": str(len(content))}
        if request.method == "HEAD":
            return web.Response(status=200, headers=headers)
        return web.Response(body=content, headers=headers)
