// The web UI of `coflow serve`, driven in headless Chromium like an admin would use it.
//
// A flow (tests/fixtures/ui/order-to-warehouse.yaml) posts orders to a warehouse this script
// serves; the warehouse is down at first, so the first run fails. The admin signs in with the
// admin token, finds the failed run and the failed action's error, brings the warehouse back,
// resubmits the run from the keyboard and watches the new run succeed as the page follows it.
// A second server runs the co-sell flows with --sandbox to show both systems converge.
//
// Screenshots of every page go to $COFLOW_SCREENSHOTS (default: $CARGO_TARGET_DIR/screenshots).
// Every request the pages make is checked to stay on the server: nothing loads from elsewhere.
"use strict";

const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const http = require("node:http");
const net = require("node:net");
const path = require("node:path");
const { spawn } = require("node:child_process");
const { chromium } = require("playwright-core");

const repo = path.resolve(__dirname, "../..");
const targetDir = process.env.CARGO_TARGET_DIR || path.join(repo, "target");
const bin = process.env.COFLOW_BIN || path.join(targetDir, "debug", "coflow");
const shots = process.env.COFLOW_SCREENSHOTS || path.join(targetDir, "screenshots");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const TOKEN = "browser-test-admin-token";

fs.mkdirSync(shots, { recursive: true });
const running = [];
after(async () => {
  await Promise.all(running.map(stop));
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// A warehouse API that answers 503 until `state.up`, then takes orders slowly enough for the
// run page to show the run going.
function startWarehouse() {
  const state = { up: false, orders: [] };
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", async () => {
      res.setHeader("content-type", "application/json");
      if (!state.up) {
        res.writeHead(503);
        res.end(JSON.stringify({ error: "warehouse closed for stocktaking" }));
        return;
      }
      await sleep(2500);
      state.orders.push(JSON.parse(body || "null"));
      res.writeHead(201);
      res.end(JSON.stringify({ accepted: true }));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({ server, state, url: `http://127.0.0.1:${server.address().port}` });
    });
  });
}

async function startCoflow(args) {
  assert.ok(fs.existsSync(bin), `coflow binary not found at ${bin}: run 'cargo build' or set COFLOW_BIN`);
  const port = await freePort();
  const child = spawn(bin, ["serve", ...args, "--listen", `127.0.0.1:${port}`], {
    cwd: repo,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stdout.on("data", (data) => (log += data));
  child.stderr.on("data", (data) => (log += data));
  const proc = { child, base: `http://127.0.0.1:${port}`, log: () => log };
  running.push(proc);
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`coflow serve exited early:\n${log}`);
    try {
      const response = await fetch(`${proc.base}/healthz`);
      if (response.ok) return proc;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`coflow serve did not start:\n${log}`);
}

function stop(proc) {
  return new Promise((resolve) => {
    if (proc.child.exitCode !== null) return resolve();
    proc.child.once("exit", resolve);
    proc.child.kill("SIGTERM");
  });
}

async function api(proc, path) {
  const response = await fetch(`${proc.base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const text = await response.text();
  assert.equal(response.status, 200, `${path}: ${text}`);
  return JSON.parse(text);
}

async function waitForEnd(proc, runId) {
  for (let i = 0; i < 300; i++) {
    // The run exists once a worker has taken its event.
    const response = await fetch(`${proc.base}/api/runs/${runId}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    if (response.status !== 404) {
      const run = await api(proc, `/api/runs/${runId}`);
      if (!["queued", "running"].includes(run.summary.status)) return run;
    }
    await sleep(100);
  }
  throw new Error(`run ${runId} did not end:\n${proc.log()}`);
}

async function newContext(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, ...options });
  context.external = [];
  context.errors = [];
  context.on("page", (page) => {
    // Script errors and blocked content (a CSP violation, say) show here; a 401 answer on the
    // sign-in page is expected and is not a page error.
    page.on("pageerror", (error) => context.errors.push(String(error)));
    page.on("console", (message) => {
      if (message.type() === "error" && !/Failed to load resource/.test(message.text())) {
        context.errors.push(message.text());
      }
    });
  });
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === "127.0.0.1") return route.continue();
    context.external.push(url.href);
    return route.abort();
  });
  return context;
}

async function shot(page, name) {
  const file = path.join(shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
}

async function signIn(page, base) {
  await page.goto(`${base}/`);
  await page.getByLabel("Admin token").fill(TOKEN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/`);
}

test("an admin finds a failed run, sees why it failed, resubmits it and sees it succeed", { timeout: 180000 }, async () => {
  const warehouse = await startWarehouse();
  const coflow = await startCoflow(["--flows", "tests/fixtures/ui", "--store", "sqlite::memory:", "--admin-token", TOKEN]);
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
  try {
    const event = {
      order: { id: "A-1", customer: "Contoso", lines: [{ sku: "BOLT-7", qty: 3, price: 4 }] },
      warehouse: warehouse.url,
    };
    const accepted = await fetch(`${coflow.base}/hooks/order-to-warehouse`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(event),
    });
    const answer = await accepted.text();
    assert.equal(accepted.status, 202, answer);
    const { run_id: failedId } = JSON.parse(answer);
    assert.equal((await waitForEnd(coflow, failedId)).summary.status, "failed");

    const context = await newContext(browser);
    const page = await context.newPage();

    // Signing in: the token once, then a session cookie.
    await page.goto(`${coflow.base}/`);
    await assert.doesNotReject(page.getByLabel("Admin token").waitFor());
    await shot(page, "01-sign-in");
    await signIn(page, coflow.base);

    // Flows: the flow, its trigger, and a failed cell in its bar of recent runs.
    await page.getByRole("link", { name: "order-to-warehouse", exact: true }).waitFor();
    assert.equal(await page.locator(".outcomes .cell.s-failed").count(), 1);
    assert.match(await page.locator("table.flows").innerText(), /1 failed/);
    await shot(page, "02-flows");

    // The flow's page: its picture, YAML and mapping file.
    await page.getByRole("link", { name: "order-to-warehouse", exact: true }).click();
    await page.waitForURL(`${coflow.base}/flows/order-to-warehouse`);
    assert.match(await page.locator("svg.flow-graph").textContent(), /Post_order/);
    assert.match(await page.locator("body").innerText(), /order_to_warehouse\s*→\s*WarehouseOrder/);
    await shot(page, "03-flow");

    // Runs, filtered to failures.
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Runs" }).click();
    await page.getByLabel("Status").selectOption("failed");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/status=failed/);
    assert.equal(await page.locator("table.runs tbody tr").count(), 1);
    await shot(page, "04-runs-failed");

    // The failed run: the failed action is open with its error; the picture marks it failed.
    await page.locator(`table.runs a[href="/runs/${failedId}"]`).click();
    await page.waitForURL(`${coflow.base}/runs/${failedId}`);
    assert.match(await page.locator("h1").innerText(), /failed/);
    const postOrder = page.locator("details.action", { has: page.locator(".action-name", { hasText: /^Post_order$/ }) });
    assert.equal(await postOrder.getAttribute("open"), "");
    const details = await postOrder.innerText();
    assert.match(details, /Http503/);
    assert.match(details, /warehouse closed for stocktaking/);
    assert.match(await page.locator("svg .node.s-failed title").allTextContents().then((t) => t.join("\n")), /Post_order/);
    await shot(page, "05-failed-run");

    // The warehouse is back. Resubmit, from the keyboard: Tab to the link, Enter, then confirm.
    warehouse.state.up = true;
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await page.keyboard.press("Tab");
      reached = await page.evaluate(() => document.activeElement && document.activeElement.textContent.trim() === "Resubmit…");
    }
    assert.ok(reached, "the Resubmit link is reachable with Tab");
    await page.keyboard.press("Enter");
    await page.waitForURL(`${coflow.base}/runs/${failedId}/resubmit`);
    await page.getByRole("heading", { name: "Resubmit this run?" }).waitFor();
    await shot(page, "06-confirm-resubmit");
    await page.getByRole("button", { name: "Yes, resubmit the run" }).click();
    await page.waitForURL((url) => url.pathname.startsWith("/runs/") && !url.pathname.includes(failedId));
    const newId = new URL(page.url()).pathname.split("/").pop();

    // The new run is still going (the warehouse is slow): the page follows it until it succeeds.
    assert.match(await page.locator(".live").innerText(), /the page follows it/);
    await shot(page, "07-resubmitted-run-going");
    await page.locator("h1 .badge.s-succeeded").waitFor({ timeout: 60000 });
    assert.equal(await page.locator(".live").count(), 0);
    assert.match(await page.locator("dl.facts").first().innerText(), new RegExp(`Resubmits\\s+${failedId}`));
    const sent = page.locator("details.action", { has: page.locator(".action-name", { hasText: /^Post_order$/ }) });
    assert.match(await sent.locator("summary").innerText(), /succeeded/);
    await shot(page, "08-resubmitted-run-succeeded");
    assert.equal(warehouse.state.orders.length, 1);
    assert.equal(warehouse.state.orders[0].reference, "A-1");
    assert.equal((await api(coflow, `/api/runs/${newId}`)).summary.status, "succeeded");

    // Back on the flows page, the bar shows the failure then the success.
    await page.getByRole("link", { name: "Flows" }).click();
    const cells = await page.locator(".outcomes .cell").evaluateAll((els) => els.map((el) => el.className));
    assert.deepEqual(cells, ["cell s-failed", "cell s-succeeded"]);
    await shot(page, "09-flows-after-resubmit");
    assert.deepEqual(context.external, [], "pages request nothing outside the server");
    assert.deepEqual(context.errors, [], "no script errors or blocked content");

    // Reading works without JavaScript.
    const plain = await newContext(browser, { javaScriptEnabled: false });
    const plainPage = await plain.newPage();
    await signIn(plainPage, coflow.base);
    await plainPage.goto(`${coflow.base}/runs/${failedId}`);
    assert.match(await plainPage.locator("body").innerText(), /warehouse closed for stocktaking/);
    await shot(plainPage, "10-failed-run-without-javascript");
  } finally {
    await browser.close();
    warehouse.server.close();
    await stop(coflow);
  }
});

test("the sandbox page shows Salesforce and Partner Center converge", { timeout: 180000 }, async () => {
  const coflow = await startCoflow(["--flows", "flows", "--sandbox"]);
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
  try {
    const context = await newContext(browser);
    const page = await context.newPage();
    await page.goto(`${coflow.base}/sandbox`);
    assert.match(await page.locator("table.sync thead").innerText(), /Salesforce opportunity\s+Sync state\s+Partner Center referral/);
    // The page refreshes itself: wait for the demo records to be in sync on both sides.
    await page.waitForFunction(
      () => {
        const totals = document.querySelector(".totals");
        return totals && /\b0 pending/.test(totals.textContent) && /\b[1-9]\d* in sync/.test(totals.textContent);
      },
      null,
      { timeout: 90000 },
    );
    const rows = await page.locator("table.sync tbody tr").allInnerTexts();
    assert.ok(rows.some((row) => /Fabrikam - Sentinel rollout[\s\S]*in sync[\s\S]*Fabrikam - Sentinel rollout/.test(row)), rows.join("\n---\n"));
    assert.ok(rows.some((row) => /internal pilot[\s\S]*not shared/.test(row)), rows.join("\n---\n"));
    await shot(page, "11-sandbox");

    await page.goto(`${coflow.base}/flows/pc-to-sf`);
    await page.locator("svg.flow-graph").waitFor();
    await shot(page, "12-cosell-flow");
    await page.goto(`${coflow.base}/`);
    await shot(page, "13-cosell-flows");
    await page.goto(`${coflow.base}/sync`);
    const opportunity = await page.locator("tbody tr", { hasText: "opportunity" }).innerText();
    assert.match(opportunity, /bidirectional/, opportunity);
    await shot(page, "14-sync-status");
    assert.deepEqual(context.external, [], "pages request nothing outside the server");
    assert.deepEqual(context.errors, [], "no script errors or blocked content");
  } finally {
    await browser.close();
    await stop(coflow);
  }
});
