// PostGraphile 5 as bench/peer/run.py starts it: the amber preset over the `public`
// schema of the benchmark database (PEER_DATABASE_URL), no watch mode, no GraphiQL.
import { makePgService } from "postgraphile/adaptors/pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { jsonPgSmartTags } from "postgraphile/utils";

// PostGraphile orders only by indexed columns; our API lists a contact's memberships by
// member_since, so this tag lets PostGraphile do the same (a contact has a few dozen
// memberships, sorted after the contact_id index found them, on either side).
const MemberSinceOrder = jsonPgSmartTags({
  version: 1,
  config: { class: { memberships: { attribute: { member_since: { tags: { isIndexed: true } } } } } },
});

/** @type {GraphileConfig.Preset} */
export default {
  extends: [PostGraphileAmberPreset],
  plugins: [MemberSinceOrder],
  pgServices: [
    makePgService({ connectionString: process.env.PEER_DATABASE_URL, schemas: ["public"] }),
  ],
  grafserv: { watch: false, graphiql: false },
};
