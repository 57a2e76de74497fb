// Starts GraphiQL on the page that loads it (graphql_api/graphiql/page.html). The page's
// Content-Security-Policy allows no inline script, so all its code is here; what differs
// between endpoints (their example tabs) comes in the page's #graphiql-config data block.
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("graphiql-config").textContent);
  const endpoint = window.location.pathname;
  const remember = document.getElementById("remember-headers");
  // GraphiQL keeps its tabs and history in localStorage; each endpoint keeps its own, so
  // the portal's page never opens with the staff API's tabs.
  const storage = guardedStorage(window.localStorage, endpoint + ":");
  remember.checked = storage.getItem("remember-headers") === "true";
  // GraphiQL 3 opens the first of its defaultTabs without its variables: it fills the
  // variables editor from storage alone. On a first visit, they are put there.
  if (storage.getItem("graphiql:tabState") === null && config.tabs[0].variables) {
    storage.setItem("graphiql:variables", config.tabs[0].variables);
  }

  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  let fetcher = newFetcher();
  // GraphiQL gives each tab its own headers; the token typed in one tab carries over to
  // every tab whose headers are empty (the example tabs, a new tab).
  let sharedHeaders = "";
  let headersOfSchema = null;
  let schemaTimer = null;

  function render() {
    root.render(
      React.createElement(GraphiQL, {
        fetcher: fetcher,
        storage: storage,
        defaultTabs: config.tabs,
        defaultEditorToolsVisibility: "headers",
        isHeadersEditorEnabled: true,
        // Headers carry tokens: this browser keeps them only while the box is ticked, and
        // forgets them when it is cleared. GraphiQL's own switch would say the same twice.
        shouldPersistHeaders: remember.checked,
        showPersistHeadersSettings: false,
        onEditHeaders: headersEdited,
        // Rendered inside GraphiQL, where its editors can be reached; shows nothing.
        toolbar: { additionalContent: React.createElement(CarryHeaders) },
      }),
    );
  }

  function newFetcher() {
    const url = new URL(endpoint, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return GraphiQL.createFetcher({ url: endpoint, subscriptionUrl: url.toString() });
  }

  // GraphiQL reads the schema (docs, completion) once, with the headers of that moment;
  // once the headers have rested for a moment, a new fetcher makes it read them again.
  function headersEdited(headers) {
    if (headers.trim()) {
      sharedHeaders = headers;
    }
    render(); // GraphiQL's schema reader takes the headers on its next render
    clearTimeout(schemaTimer);
    schemaTimer = setTimeout(function () {
      if (headers !== headersOfSchema && isJsonObject(headers)) {
        headersOfSchema = headers;
        fetcher = newFetcher();
        render();
      }
    }, 700);
  }

  function CarryHeaders() {
    const editors = GraphiQL.React.useEditorContext({ nonNull: true });
    const headerEditor = editors.headerEditor;
    React.useEffect(
      function () {
        if (!headerEditor) {
          return;
        }
        if (headerEditor.getValue().trim()) {
          sharedHeaders = headerEditor.getValue();
        } else if (sharedHeaders) {
          headerEditor.setValue(sharedHeaders);
        }
      },
      [headerEditor, editors.activeTabIndex],
    );
    return null;
  }

  remember.addEventListener("change", function () {
    storage.setItem("remember-headers", String(remember.checked));
    if (!remember.checked) {
      storage.forgetHeaders();
    }
    render();
  });
  render();

  function isJsonObject(text) {
    try {
      const value = JSON.parse(text);
      return typeof value === "object" && value !== null && !Array.isArray(value);
    } catch {
      return false;
    }
  }

  // A Storage for GraphiQL's `storage` prop whose keys all start with prefix, and which
  // keeps no headers while the box is clear: GraphiQL leaves them out of its tabs then,
  // but not out of its query history.
  function guardedStorage(store, prefix) {
    function own() {
      return Object.keys(store).filter(function (key) {
        return key.startsWith(prefix);
      });
    }
    // value with every "headers" in it made null (as GraphiQL's tabs have them when not
    // kept); anything else exactly as given, since GraphiQL compares what it stored.
    function withoutHeaders(key, value) {
      if (key.endsWith(":variables")) {
        return value; // the variables editor's text: a variable may be called headers
      }
      let found = false;
      try {
        const cleaned = JSON.stringify(JSON.parse(value), function (name, item) {
          if (name === "headers" && item !== null) {
            found = true;
            return null;
          }
          return item;
        });
        return found ? cleaned : value;
      } catch {
        return value; // not JSON, so no headers inside
      }
    }
    return {
      getItem: function (key) {
        return store.getItem(prefix + key);
      },
      setItem: function (key, value) {
        if (remember.checked) {
          store.setItem(prefix + key, value);
        } else if (!key.endsWith(":headers")) {
          store.setItem(prefix + key, withoutHeaders(key, value));
        }
      },
      removeItem: function (key) {
        store.removeItem(prefix + key);
      },
      get length() {
        return own().length;
      },
      clear: function () {
        own().forEach(function (key) {
          store.removeItem(key);
        });
      },
      forgetHeaders: function () {
        own().forEach(function (key) {
          if (key.endsWith(":headers")) {
            store.removeItem(key);
          } else {
            store.setItem(key, withoutHeaders(key, store.getItem(key)));
          }
        });
      },
    };
  }
})();
