"""A Node app linked to a Redis and a Postgres service on a booted host: it reads a Redis key
through REDIS_URL with ioredis (the URL as podku sets it) and with node-redis (the README's
one line), and a Postgres row through DATABASE_URL with node-postgres, each URL unchanged.
The packages come from pkgserver.py, the service images from the cache (make-images.sh)."""

from __future__ import annotations

import json

import pytest
from builderapps import SourceRepo
from servicetools import POSTGRES_IMAGE, REDIS_IMAGE, get, prepared

DEPENDENCIES = {"ioredis": "6.0.0", "@redis/client": "6.3.1", "pg": "8.23.1"}

SERVER = '''\
const http = require("http");
const Redis = require("ioredis");
const { createClient } = require("@redis/client");
const { Client } = require("pg");

const url = process.env.REDIS_URL;

async function withIoredis(use) {
  const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => null });
  try { return await use(client); } finally { client.disconnect(); }
}

async function withNodeRedis(use) {
  // node-redis reads the socket's path from the URL but not a password given as a parameter
  const client = createClient({ url, password: new URL(url).searchParams.get("password") });
  client.on("error", () => {});
  await client.connect();
  try { return await use(client); } finally { await client.quit(); }
}

async function withPostgres(use) {
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  try { return await use(client); } finally { await client.end(); }
}

const routes = {
  "/": async () => "node",
  "/redis/set": (query) => withIoredis(async (r) => { await r.set("note", query.get("value")); return "set"; }),
  "/redis/get": () => withIoredis((r) => r.get("note")),
  "/node-redis/get": () => withNodeRedis((r) => r.get("note")),
  "/pg/write": (query) => withPostgres(async (db) => {
    await db.query("CREATE TABLE IF NOT EXISTS notes (body text)");
    await db.query("INSERT INTO notes VALUES ($1)", [query.get("body")]);
    return "written";
  }),
  "/pg/read": () => withPostgres(async (db) =>
    (await db.query("SELECT body FROM notes ORDER BY body")).rows.map((row) => row.body).join(",")),
};

http.createServer(async (req, res) => {
  const where = new URL(req.url, "http://app");
  const route = routes[where.pathname];
  if (!route) { res.statusCode = 404; res.end("not found"); return; }
  try {
    res.end(String(await route(where.searchParams)));
  } catch (error) {
    res.statusCode = 500;
    res.end(`error ${error.message}`);
  }
}).listen(process.env.PORT);
process.on("SIGTERM", () => process.exit(0));
'''


def node_services_app() -> dict[str, str]:
    package = {"name": "services", "version": "1.0.0", "main": "server.js", "dependencies": DEPENDENCIES}
    return {"package.json": json.dumps(package, indent=2) + "\n", "server.js": SERVER}


@pytest.fixture(scope="module")
def node_host(host):
    with prepared(host, POSTGRES_IMAGE, REDIS_IMAGE) as machine:
        yield machine


def test_a_node_app_reads_redis_with_ioredis_and_postgres_with_node_postgres_through_the_urls(
        node_host, tmp_path, app_name):
    cache, db = f"cache-{app_name[:40]}", f"db-{app_name[:40]}"
    repo = SourceRepo(tmp_path / app_name, node_host, app_name)
    try:
        node_host.ssh("redis:create", cache)
        node_host.ssh("postgres:create", db)
        repo.write(node_services_app())
        repo.push()
        assert get(node_host, app_name, "/") == (200, "node")
        node_host.ssh("redis:link", cache, app_name)
        node_host.ssh("postgres:link", db, app_name)

        assert get(node_host, app_name, "/redis/set?value=hello") == (200, "set")
        assert get(node_host, app_name, "/redis/get") == (200, "hello")
        assert get(node_host, app_name, "/node-redis/get") == (200, "hello")
        assert get(node_host, app_name, "/pg/write?body=row1") == (200, "written")
        assert get(node_host, app_name, "/pg/read") == (200, "row1")

        # the password is really used: the same socket with another password is refused
        url = node_host.ssh("config:get", app_name, "REDIS_URL").stdout.strip()
        node_host.ssh("config:set", app_name, f"REDIS_URL={url.split('?')[0]}?password={'0' * 48}")
        status, body = get(node_host, app_name, "/redis/get")
        assert status == 500 and "WRONGPASS" in body, body
    finally:
        node_host.podku("apps:destroy", app_name, "--force", check=False)
        node_host.podku("redis:destroy", cache, "--force", check=False)
        node_host.podku("postgres:destroy", db, "--force", check=False)
