/*
 * Storefabric insert: dynamic prices next to each product, and shopper events back.
 *
 *   <script src="https://API/v1/js/storefabric.js" data-key="pk_..." async></script>
 *   <span data-sf-sku="SKU-1">$19.99</span>
 *
 * One price request per 100 marked products (a simple CORS GET: no preflight), each
 * URL at most 4,000 characters, so a page of long SKUs still fits a server or proxy
 * left at a common request-line limit (gunicorn's default is 4,094); prices are
 * formatted with Intl.NumberFormat in the page's <html lang>. Events
 * are queued and sent in batches of at most 60 KB: on a timer with a keepalive
 * fetch (text/plain, status read), on pagehide with sendBeacon after saving the
 * batch (a beacon reports no status, so the saved copy is sent again 2 s later or
 * on the next page). Unconfirmed batches stay in localStorage (one key per batch, so tabs
 * never overwrite each other; at most 20 batches, a day old at most, pruned oldest
 * first on every tick) and are retried with jittered backoff that honours
 * Retry-After; a 4xx other than 408/429 is dropped. Tabs of one origin share the
 * stored batches: a tab sends one only while holding its Web Lock (where the page
 * has navigator.locks: secure contexts), re-reading it under the lock, and writes a
 * lease into the record (the only guard without Web Locks, and what keeps a batch
 * whose keepalive fetch outlives its page from being resent at once). A failure
 * never rewrites a batch that another tab confirmed meanwhile. At most 60 KB is in
 * flight per tick (the browser's keepalive limit is 64 KB a page).
 * The server deduplicates by event id, so a resend is harmless. A prerendered
 * page sends nothing until it is shown. Nothing here throws into the page.
 * Source of storefabric.min.js (python manage.py build_insert).
 */
(function (win, doc) {
  'use strict';
  if (win.storefabric || !win.fetch || !win.JSON) {
    return;
  }
  var PREFIX = 'sf1:';
  var MAX_BYTES = 60000;
  var MAX_EVENTS = 500;
  var MAX_STORED = 20;
  var MAX_AGE = 864e5;
  var TICK = 3000;
  var LEASE = 15000;
  var BEACON_WAIT = 2000;
  var PRICE_TIMEOUT = 4000;
  var MAX_SKUS = 100;
  var MAX_URL = 4000;
  var SKU = new RegExp('@SKU_PATTERN@'); // the SKU rule of pricing/skus.py, put in by the build
  var TYPES = { page_view: 1, product_view: 1, add_to_cart: 1, purchase: 1 };
  var script = doc.currentScript || doc.querySelector('script[data-key]');
  var key = script && script.getAttribute('data-key');
  var api = script && (script.getAttribute('data-api') || script.src.split('/v1/js/')[0]);
  var queue = [];
  var variants = {};
  var formats = {};
  var local;
  var session;
  var visitor;

  function noop() {}

  function guard(fn) {
    return function () {
      try {
        return fn.apply(this, arguments);
      } catch (e) {
        return undefined;
      }
    };
  }

  function uuid() {
    var b = new Uint8Array(16);
    var h = '';
    var i;
    win.crypto.getRandomValues(b);
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    for (i = 0; i < 16; i++) {
      h += (b[i] + 256).toString(16).slice(1) + (i === 3 || i === 5 || i === 7 || i === 9 ? '-' : '');
    }
    return h;
  }

  function storage(kind) {
    try {
      var s = win[kind];
      s.setItem(PREFIX + 't', '1');
      s.removeItem(PREFIX + 't');
      return s;
    } catch (e) {
      return null;
    }
  }

  function read(k) {
    try {
      return JSON.parse(local.getItem(PREFIX + k));
    } catch (e) {
      return null;
    }
  }

  function write(k, value) {
    try {
      local.setItem(PREFIX + k, JSON.stringify(value));
    } catch (e) {
      noop();
    }
  }

  function remove(k) {
    try {
      local.removeItem(PREFIX + k);
    } catch (e) {
      noop();
    }
  }

  function remembered(s, k) {
    var v = s && s.getItem(PREFIX + k);
    if (!v) {
      v = uuid();
      if (s) {
        s.setItem(PREFIX + k, v);
      }
    }
    return v;
  }

  function stored() {
    var ids = [];
    var i;
    var k;
    if (!local) {
      return ids;
    }
    for (i = 0; i < local.length; i++) {
      k = local.key(i);
      if (k && k.indexOf(PREFIX + 'b:') === 0) {
        ids.push(k.slice(PREFIX.length));
      }
    }
    return ids;
  }

  function prune() {
    var now = Date.now();
    var batches = [];
    stored().forEach(function (id) {
      var rec = read(id);
      if (!rec || now - rec.t > MAX_AGE) {
        remove(id);
      } else {
        batches.push([rec.t, id]);
      }
    });
    batches.sort(function (a, b) {
      return a[0] - b[0];
    });
    while (batches.length > MAX_STORED) {
      remove(batches.shift()[1]);
    }
  }

  function format(price, currency) {
    var lang = doc.documentElement.lang || navigator.language || 'en';
    var f = formats[lang + currency];
    if (!f) {
      f = formats[lang + currency] = new Intl.NumberFormat(lang, { style: 'currency', currency: currency });
    }
    return f.format(price);
  }

  function marked() {
    var els = doc.querySelectorAll('[data-sf-sku]');
    var bySku = {};
    var i;
    var sku;
    for (i = 0; i < els.length; i++) {
      sku = els[i].getAttribute('data-sf-sku');
      if (SKU.test(sku)) {
        (bySku[sku] = bySku[sku] || []).push(els[i]);
      }
    }
    return bySku;
  }

  function show(bySku, body) {
    (body && body.prices || []).forEach(guard(function (p) {
      var text = format(p.price, p.currency);
      if (p.variant) {
        variants[p.sku] = p.variant;
      }
      (bySku[p.sku] || []).forEach(function (el) {
        el.textContent = text;
        el.setAttribute('data-sf-price', p.price);
      });
    }));
  }

  function priceUrl(skus) {
    return api + '/v1/prices?skus=' + skus.join(',') + '&key=' + encodeURIComponent(key) + '&visitor=' + visitor;
  }

  function prices(bySku) {
    var skus = Object.keys(bySku);
    var calls = [];
    var part = [];
    var empty = priceUrl([]).length;
    var size = empty;
    var i;
    for (i = 0; i < skus.length; i++) {
      if (part.length && (part.length === MAX_SKUS || size + skus[i].length + 1 > MAX_URL)) {
        calls.push(pricesOf(bySku, part));
        part = [];
        size = empty;
      }
      part.push(skus[i]);
      size += skus[i].length + 1;
    }
    if (part.length) {
      calls.push(pricesOf(bySku, part));
    }
    return Promise.all(calls);
  }

  function pricesOf(bySku, skus) {
    var ctl = win.AbortController ? new AbortController() : null;
    var timer = setTimeout(function () {
      if (ctl) {
        ctl.abort();
      }
    }, PRICE_TIMEOUT);
    return fetch(priceUrl(skus), { credentials: 'omit', signal: ctl ? ctl.signal : undefined }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (body) {
      show(bySku, body);
    })['catch'](noop).then(function () {
      clearTimeout(timer);
    });
  }

  function track(type, data) {
    var e = { id: uuid(), type: type, ts: new Date().toISOString(), session: session };
    data = data || {};
    if (!TYPES[type] || (type !== 'page_view' && !SKU.test(data.sku))) {
      return false;
    }
    if (type !== 'page_view') {
      e.sku = data.sku;
      if (variants[data.sku]) {
        e.variant = variants[data.sku];
      }
    }
    if (data.quantity >= 1 && data.quantity % 1 === 0) {
      e.quantity = data.quantity;
    }
    if (data.price !== undefined && isFinite(data.price) && data.price >= 0) {
      e.price = String(data.price);
    }
    queue.push(e);
    return true;
  }

  function take() {
    var events = [];
    var size = 20;
    var n;
    while (queue.length && events.length < MAX_EVENTS) {
      n = JSON.stringify(queue[0]).length + 1;
      if (events.length && size + n > MAX_BYTES) {
        break;
      }
      size += n;
      events.push(queue.shift());
    }
    return events;
  }

  function save(events, lease) {
    var id = 'b:' + uuid();
    write(id, { t: Date.now(), n: 0, at: Date.now() + lease, e: events });
    return id;
  }

  function endpoint() {
    return api + '/v1/events?key=' + encodeURIComponent(key);
  }

  function backoff(id, rec, retryAfter) {
    var wait = Math.min(300000, 1000 * Math.pow(2, rec.n));
    if (!read(id)) {
      return;
    }
    rec.n += 1;
    rec.at = Date.now() + Math.max(wait * (0.5 + Math.random()), (parseInt(retryAfter, 10) || 0) * 1000);
    write(id, rec);
  }

  function send(id, rec) {
    rec.at = Date.now() + LEASE;
    write(id, rec);
    return fetch(endpoint(), {
      method: 'POST',
      body: JSON.stringify({ events: rec.e }),
      keepalive: true,
      credentials: 'omit'
    }).then(function (r) {
      if (r.ok || (r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429)) {
        remove(id);
      } else {
        backoff(id, rec, r.headers.get('Retry-After'));
      }
    })['catch'](function () {
      backoff(id, rec, 0);
    });
  }

  function claim(id) {
    var rec = read(id);
    return rec && rec.at <= Date.now() ? send(id, rec) : null;
  }

  function tick() {
    var now;
    var budget = MAX_BYTES;
    var locks = navigator.locks;
    while (queue.length) {
      save(take(), 0);
    }
    prune();
    now = Date.now();
    stored().forEach(function (id) {
      var rec = read(id);
      var size = rec ? JSON.stringify(rec.e).length : 0;
      if (rec && rec.at <= now && size <= budget) {
        budget -= size;
        if (locks) {
          locks.request(PREFIX + id, { ifAvailable: true }, guard(function (lock) {
            return lock && claim(id);
          }))['catch'](noop);
        } else {
          claim(id);
        }
      }
    });
  }

  function beacon() {
    var events;
    var id;
    while (queue.length) {
      events = take();
      id = save(events, BEACON_WAIT);
      if (!navigator.sendBeacon || !navigator.sendBeacon(endpoint(), JSON.stringify({ events: events }))) {
        write(id, { t: Date.now(), n: 0, at: 0, e: events });
      }
    }
    prune();
  }

  function start() {
    var bySku = marked();
    track('page_view');
    prices(bySku).then(guard(function () {
      Object.keys(bySku).forEach(function (sku) {
        track('product_view', { sku: sku });
      });
    }));
    setTimeout(guard(tick), 500 + Math.random() * 1000);
    setInterval(guard(tick), TICK);
    win.addEventListener('pagehide', guard(beacon));
    doc.addEventListener('visibilitychange', guard(function () {
      if (doc.visibilityState === 'hidden') {
        beacon();
      }
    }));
  }

  function whenReady() {
    if (doc.readyState === 'loading') {
      doc.addEventListener('DOMContentLoaded', guard(start));
    } else {
      start();
    }
  }

  guard(function () {
    local = storage('localStorage');
    session = remembered(storage('sessionStorage'), 's');
    visitor = remembered(local, 'v');
    win.storefabric = { version: '1', track: guard(track), flush: guard(tick) };
    if (!key || !api) {
      return;
    }
    if (doc.prerendering) {
      doc.addEventListener('prerenderingchange', guard(whenReady), { once: true });
    } else {
      whenReady();
    }
  })();
}(window, document));
