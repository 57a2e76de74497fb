// PostGraphile 5 wants Node 22's Promise.withResolvers; this lets it run on Node 20.
Promise.withResolvers ??= () => { let resolve, reject; const promise = new Promise((res, rej) => { resolve = res; reject = rej; }); return { promise, resolve, reject }; };
