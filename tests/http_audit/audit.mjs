// Audits a GraphQL endpoint against the GraphQL-over-HTTP specification with graphql-http's
// auditServer, sending `Authorization: Bearer $GRAPHQL_API_TOKEN` with every request.
// Usage: GRAPHQL_API_TOKEN=gapi_... node audit.mjs http://127.0.0.1:8000/graphql
// Prints one JSON array: {id, name, status, reason} per audit; status is ok, warn or error.
import { auditServer } from 'graphql-http';

const [url] = process.argv.slice(2);
const token = process.env.GRAPHQL_API_TOKEN;

function withToken(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

const results = await auditServer({ url, fetchFn: withToken });
const report = results.map(({ id, name, status, reason }) => ({ id, name, status, reason }));
console.log(JSON.stringify(report));
