// The page's own check of a data guest's HTTP request (crate/js/calls.ts allowedUrl): the
// core checked the host in the worker, but the worker is not trusted, so the page parses the
// URL again with the parser fetch uses and fetches the URL as parsed.
import { test } from 'node:test';
import assert from 'node:assert/strict';

const { allowedUrl } = await import(new URL('../../pkg/calls.js', import.meta.url));
const handler = { allowedHosts: ['api.example.com', '*.allowed.com', '[::1]'.slice(1, -1)] };

test('allowed hosts pass, parsed as fetch parses them', () => {
  assert.equal(allowedUrl(handler, 'https://API.Example.com:8443/x?y#z').href, 'https://api.example.com:8443/x?y#z');
  assert.equal(allowedUrl(handler, 'http://a.b.allowed.com/').hostname, 'a.b.allowed.com');
  assert.equal(allowedUrl(handler, 'http://[::1]:8080/').hostname, '[::1]');
});

test('what a compromised worker could send is refused', () => {
  for (const url of [
    // WHATWG parsing: host evil.com, path /.allowed.com (a text-only check would see *.allowed.com).
    'https://evil.com\\.allowed.com/',
    'https://evil.com/.allowed.com',
    'https://allowed.com.evil.com/',
    'https://user:pw@api.example.com/',
    'ftp://api.example.com/',
    'file:///etc/passwd',
    'javascript:alert(1)',
    'not a url',
    'https://allowed.com/', // *.allowed.com needs a subdomain
  ]) {
    assert.equal(typeof allowedUrl(handler, url), 'string', `${url} was allowed`);
  }
});
