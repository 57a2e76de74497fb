"""The tabs GraphiQL opens with on each endpoint: what people ask first, ready to run.

A test runs every one of them against the served schema (tests/test_graphiql.py).
"""

from __future__ import annotations

from graphql_api.web.graphiql import Example

STAFF_EXAMPLES = (
    Example(
        """# Send your token in the Headers tab below:
#   {"Authorization": "Bearer gapi_..."}
# then run a tab with the pink button (Ctrl-Enter). Docs (top left) lists every field.

# A group picker: open groups whose name holds the search text, a page at a time.
query GroupPicker($search: String, $first: Int = 20) {
  groups(filter: {search: $search, closed: false}, first: $first) {
    totalCount
    edges {
      node {
        id
        name
        kind
      }
    }
    pageInfo {
      hasNextPage
      endCursor
    }
  }
}
""",
        {"search": "nieuws"},
    ),
    Example(
        """# Composite groups: what each is built from, what it leaves out, and its members.
query CompositeGroups {
  groups(filter: {kind: COMPOSITE}, first: 5) {
    edges {
      node {
        name
        compositionMode
        composedOf {
          name
        }
        excludedGroups {
          name
        }
        memberCount
        members(first: 10) {
          edges {
            node {
              displayName
              city
            }
          }
        }
      }
    }
  }
}
"""
    ),
    Example(
        """# A contact's groups, found by a piece of name, e-mail, postal code or city: every
# group the contact is in, and how each explicit membership came about.
query ContactGroups($search: String) {
  contacts(search: $search, first: 3) {
    edges {
      node {
        displayName
        email
        groups {
          name
          kind
        }
        memberships {
          group {
            name
          }
          source
          memberSince
        }
      }
    }
  }
}
""",
        {"search": "Zwolle"},
    ),
)

PORTAL_EXAMPLES = (
    Example(
        """# Log in with your e-mail address and password, then send the session token in the
# Headers tab below:
#   {"Authorization": "Bearer <sessionToken>"}
mutation Login($email: String!, $password: String!) {
  portalLogin(email: $email, password: $password) {
    sessionToken
    retryAfterSeconds
    errors {
      code
      message
    }
  }
}
""",
        {"email": "you@example.nl", "password": ""},
    ),
    Example(
        """# You, and the groups shown on the portal that you are in.
query MyGroups {
  me {
    displayName
    email
    groups {
      name
      startDate
      endDate
    }
  }
}
"""
    ),
    Example(
        """# Every group shown on the portal: whether you are in it, and whether you may join
# or leave it here (joinGroup, leaveGroup).
query VisibleGroups {
  groups {
    id
    name
    description
    isMember
    canChange
  }
}
"""
    ),
)
