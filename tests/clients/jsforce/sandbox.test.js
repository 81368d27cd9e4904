// jsforce, a real Salesforce client, against the coflow Salesforce sandbox.
//
// The test starts `coflow sandbox` on free ports (binary from COFLOW_BIN, or the debug build),
// reads the URL and access token it prints, and talks to it only through jsforce.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');
const jsforce = require('jsforce');

const BIN = process.env.COFLOW_BIN || path.resolve(__dirname, '../../../target/debug/coflow');
const VERSION = '59.0';

let child;
let conn;

/** Starts the sandbox and resolves with the `key: value` lines it prints before serving. */
function startSandbox() {
  return new Promise((resolve, reject) => {
    child = spawn(BIN, ['sandbox', '--salesforce-addr', '127.0.0.1:0', '--partner-center-addr', '127.0.0.1:0'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const info = {};
    const timer = setTimeout(() => reject(new Error(`${BIN} printed no access token within 20 s`)), 20000);
    child.on('error', (err) => reject(new Error(`cannot start ${BIN}: ${err.message} (build it or set COFLOW_BIN)`)));
    child.on('exit', (code) => reject(new Error(`coflow sandbox exited early with code ${code}`)));
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /^\s*([a-z_]+): (\S+)$/.exec(line);
      if (!match) return;
      info[match[1]] = match[2];
      if (match[1] === 'access_token') {
        clearTimeout(timer);
        resolve(info);
      }
    });
  });
}

before(async () => {
  const info = await startSandbox();
  assert.match(info.salesforce_url, /^http:\/\/127\.0\.0\.1:\d+$/);
  conn = new jsforce.Connection({ instanceUrl: info.salesforce_url, accessToken: info.access_token, version: VERSION });
});

after(() => {
  if (child) child.kill('SIGINT');
});

function leads(from, count) {
  return Array.from({ length: count }, (_, i) => ({ LastName: `Lead ${String(from + i).padStart(5, '0')}`, Company: 'Contoso' }));
}

test('create, retrieve, update and delete a record', async () => {
  const created = await conn.sobject('Account').create({ Name: 'Contoso Ltd', Industry: 'Technology' });
  assert.equal(created.success, true);
  assert.match(created.id, /^001[0-9A-Za-z]{15}$/);

  const account = await conn.sobject('Account').retrieve(created.id);
  assert.equal(account.Id, created.id);
  assert.equal(account.Name, 'Contoso Ltd');
  assert.equal(account.attributes.type, 'Account');
  assert.equal(account.Description, null);

  const updated = await conn.sobject('Account').update({ Id: created.id, Name: 'Contoso Limited' });
  assert.deepEqual(updated, { id: created.id, success: true, errors: [] });
  const partial = await conn.sobject('Account').retrieve(created.id, { fields: ['Name'] });
  assert.equal(partial.Name, 'Contoso Limited');
  assert.equal(partial.Industry, undefined);

  const destroyed = await conn.sobject('Account').destroy(created.id);
  assert.equal(destroyed.success, true);
  await assert.rejects(conn.sobject('Account').retrieve(created.id), (err) => err.errorCode === 'ENTITY_IS_DELETED');
  assert.ok(conn.limitInfo.apiUsage.used > 0, 'Sforce-Limit-Info is parsed');
  assert.equal(conn.limitInfo.apiUsage.limit, 15000);
});

test('validation errors surface as jsforce errors', async () => {
  await assert.rejects(
    conn.sobject('Opportunity').create({ Name: 'No stage' }),
    (err) => err.errorCode === 'REQUIRED_FIELD_MISSING' && /StageName/.test(err.message),
  );
  await assert.rejects(conn.query('SELECT Id FORM Opportunity'), (err) => err.errorCode === 'MALFORMED_QUERY');
});

test('upsert by external id creates, then updates', async () => {
  const opp = conn.sobject('Opportunity');
  const first = await opp.upsert({ Referral_Id__c: 'REF-42', Name: 'Fabrikam - Dynamics', StageName: 'Prospecting', CloseDate: '2025-03-31' }, 'Referral_Id__c');
  assert.equal(first.success, true);
  assert.equal(first.created, true);
  const second = await opp.upsert({ Referral_Id__c: 'REF-42', StageName: 'Closed Won' }, 'Referral_Id__c');
  assert.equal(second.created, false);
  assert.equal(second.id, first.id);
  const record = await opp.retrieve(first.id);
  assert.equal(record.IsWon, true);
  assert.equal(record.Probability, 100);
});

test('describe lists the co-sell fields', async () => {
  const meta = await conn.sobject('Opportunity').describe();
  assert.equal(meta.keyPrefix, '006');
  const names = meta.fields.map((f) => f.name);
  for (const field of ['Sync_with_Partner_Center__c', 'Referral_Identifier__c', 'Referral_Link__c', 'How_can_Microsoft_help__c', 'Products__c', 'Audit__c']) {
    assert.ok(names.includes(field), `${field} described`);
  }
  const stage = meta.fields.find((f) => f.name === 'StageName');
  assert.ok(stage.picklistValues.some((p) => p.value === 'Closed Won'));
  const global = await conn.describeGlobal();
  assert.ok(global.sobjects.some((s) => s.name === 'Microsoft_Solution__c'));
});

test('collection create of 200 records, then paging through 5,000', async () => {
  const results = await conn.sobject('Lead').create(leads(0, 200));
  assert.equal(results.length, 200);
  assert.ok(results.every((r) => r.success && /^00Q/.test(r.id)));

  for (let start = 200; start < 5000; start += 200) {
    const batch = await conn.sobject('Lead').create(leads(start, 200), { allOrNone: true });
    assert.ok(batch.every((r) => r.success));
  }

  const result = await conn.query('SELECT Id, LastName FROM Lead ORDER BY LastName', { autoFetch: true, maxFetch: 10000 });
  assert.equal(result.totalSize, 5000);
  assert.equal(result.records.length, 5000);
  assert.equal(result.records[0].LastName, 'Lead 00000');
  assert.equal(result.records[4999].LastName, 'Lead 04999');
  assert.equal(new Set(result.records.map((r) => r.Id)).size, 5000);

  // maxFetch stops early; without autoFetch only the first page (2,000) comes back.
  const capped = await conn.query('SELECT Id FROM Lead', { autoFetch: true, maxFetch: 2500 });
  assert.equal(capped.records.length, 2500);
  const firstPage = await conn.query('SELECT Id FROM Lead');
  assert.equal(firstPage.records.length, 2000);
  assert.equal(firstPage.done, false);
  assert.match(firstPage.nextRecordsUrl, /\/query\/01g\w+-2000$/);
  const next = await conn.queryMore(firstPage.nextRecordsUrl);
  assert.equal(next.records.length, 2000);

  const count = await conn.query('SELECT COUNT() FROM Lead');
  assert.equal(count.totalSize, 5000);
});

test('relationship queries come back nested', async () => {
  const account = await conn.sobject('Account').create({ Name: 'Northwind' });
  const opp = await conn.sobject('Opportunity').create({ Name: 'Northwind - Azure', StageName: 'Qualification', CloseDate: '2025-06-30', AccountId: account.id });
  await conn.sobject('Microsoft_Solution__c').create({ Name: 'Azure Migrate', Opportunity__c: opp.id });
  const result = await conn.query(
    `SELECT Name, Account.Name, (SELECT Name FROM Microsoft_Solutions__r) FROM Opportunity WHERE Id = '${opp.id}'`,
  );
  assert.equal(result.records[0].Account.Name, 'Northwind');
  assert.equal(result.records[0].Microsoft_Solutions__r.records[0].Name, 'Azure Migrate');
});
