import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  leafHash,
  rootOf,
  inclusionProof,
  verifyInclusion,
  MerkleFrontier,
  EventFrontier,
} from '../../src/audit/merkle.ts';
import { createHash } from 'node:crypto';

// Test vectors of the Certificate Transparency reference implementation (RFC 6962):
// leaf inputs and the tree roots for sizes 1..8, and the audit path of leaf 0 in tree 8.
const INPUTS = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
const ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const leaves = INPUTS.map((h) => leafHash(Buffer.from(h, 'hex')));

test('roots match the RFC 6962 reference vectors, batch and incremental', () => {
  for (let n = 1; n <= 8; n++) {
    assert.equal(rootOf(leaves.slice(0, n)).toString('hex'), ROOTS[n - 1]);
    const f = new MerkleFrontier();
    for (const l of leaves.slice(0, n)) f.pushLeafHash(l);
    assert.equal(f.root().toString('hex'), ROOTS[n - 1]);
  }
  assert.equal(rootOf([]).toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

test('audit path of leaf 0 in the 8-leaf tree matches the reference', () => {
  assert.deepEqual(
    inclusionProof(leaves, 0).map((b) => b.toString('hex')),
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  );
});

test('every leaf of every tree up to 70 proves; a wrong leaf, index, size or path does not', () => {
  for (let n = 1; n <= 70; n++) {
    const L = Array.from({ length: n }, (_, i) => leafHash(Buffer.from([i, n])));
    const root = rootOf(L);
    for (let m = 0; m < n; m++) {
      const p = inclusionProof(L, m);
      assert.ok(verifyInclusion(L[m]!, m, n, p, root), `leaf ${m} of ${n}`);
      if (n > 1) {
        assert.ok(!verifyInclusion(L[(m + 1) % n]!, m, n, p, root), 'other leaf');
        assert.ok(!verifyInclusion(L[m]!, (m + 1) % n, n, p, root), 'other index');
      }
      if (p.length) assert.ok(!verifyInclusion(L[m]!, m, n, p.slice(0, -1), root), 'short path');
    }
    assert.ok(!verifyInclusion(L[0]!, n, n, [], root), 'index beyond size');
  }
});

test('a frontier resumed from its stored form continues the same tree', () => {
  const L = Array.from({ length: 100 }, (_, i) => leafHash(Buffer.from([i])));
  const f = new MerkleFrontier();
  for (const l of L.slice(0, 37)) f.pushLeafHash(l);
  const g = MerkleFrontier.from(f.size, f.toHex());
  for (const l of L.slice(37)) g.pushLeafHash(l);
  assert.equal(g.root().toString('hex'), rootOf(L).toString('hex'));
  assert.throws(() => MerkleFrontier.from(37, f.toHex().slice(1)));
});

test('EventFrontier (string hashes, used by verify) builds the same tree as MerkleFrontier at every size up to 300', () => {
  const hexes = Array.from({ length: 300 }, (_, i) => createHash('sha256').update(String(i)).digest('hex'));
  const e = new EventFrontier();
  const m = new MerkleFrontier();
  for (const h of hexes) {
    assert.equal(e.pushEventHash(h), true);
    m.pushLeafHash(leafHash(Buffer.from(h, 'hex')));
    assert.deepEqual(e.toHex(), m.toHex(), `size ${m.size}`);
  }
  assert.equal(
    MerkleFrontier.from(e.size, e.toHex()).root().toString('hex'),
    rootOf(hexes.map((h) => leafHash(Buffer.from(h, 'hex')))).toString('hex'),
  );
  for (const bad of ['', 'zz'.repeat(32), hexes[0]!.slice(1), hexes[0]! + '00'])
    assert.equal(e.pushEventHash(bad), false, JSON.stringify(bad));
  assert.equal(e.size, 300, 'a refused hash appends nothing');
});
