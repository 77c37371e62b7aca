/* kaizhou-gis map runtime: draws the compact layer specs written by kaizhou_gis/maps.py.
 * Every text that comes from the data is put into the page with textContent, never as HTML,
 * so a village named "<img src=x onerror=...>" is shown as text and runs nothing.
 * Part of kaizhou-gis (MIT licence). */
(function () {
  "use strict";
  var KZ = (window.KZ = { layers: {}, searchIndex: [] });

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  KZ.el = el;

  function popupNode(spec, row) {
    var props = row[3] || [];
    var box = el("div", "kz-popup");
    if (spec.tf >= 0 && props[spec.tf] !== undefined) box.appendChild(el("div", "kz-popup-title", props[spec.tf]));
    box.appendChild(el("div", "kz-popup-layer", spec.label));
    var table = el("table"), link = spec.link === undefined ? -1 : spec.link;
    for (var i = 0; i < spec.f.length; i++) {
      var v = props[i];
      if (i === spec.tf || i === link || v === null || v === undefined || v === "") continue;
      var tr = el("tr");
      tr.appendChild(el("th", null, spec.f[i]));
      tr.appendChild(el("td", null, v));
      table.appendChild(tr);
    }
    box.appendChild(table);
    if (link >= 0 && props[link] !== null && props[link] !== undefined && props[link] !== "") {
      /* a large district page: the feature's details are on its township's map */
      var a = el("a", "kz-popup-link", spec.f[link] + " →");
      a.href = "townships/" + encodeURIComponent(String(props[link])) + ".html";
      box.appendChild(a);
    }
    return box;
  }

  function styleOf(spec, cat) {
    var c = spec.cats[cat] || spec.cats[0];
    return {
      color: c.stroke || c.color, fillColor: c.color, weight: c.weight || 1,
      opacity: c.opacity === undefined ? 0.9 : c.opacity,
      fillOpacity: c.fillOpacity === undefined ? 0.85 : c.fillOpacity,
      dashArray: c.dash || null
    };
  }

  /* Build one overlay from its spec; returns a Leaflet layer (a group).
   * Markers are added synchronously (no chunked loading), so a search right after the page
   * loads finds every marker in its group. */
  KZ.layer = function (map, spec) {
    var cluster = spec.cluster && typeof L.markerClusterGroup === "function";
    var group = cluster
      ? L.markerClusterGroup({ showCoverageOnHover: false, maxClusterRadius: 45, disableClusteringAtZoom: 14,
                               chunkedLoading: false })
      : L.featureGroup();
    var features = [], spread = [];
    spec.data.forEach(function (row, i) {
      var geom = row[0], cat = row[1], size = row[2], f;
      var st = styleOf(spec, cat);
      if (spec.kind === "point") {
        st.radius = size || spec.radius || 5;
        f = L.circleMarker(geom, st);
        if (row[4]) spread.push([f, L.latLng(geom), row[4]]);
      } else if (spec.kind === "line") {
        f = L.polyline(geom, st);
      } else {
        st.fillOpacity = spec.cats[cat] && spec.cats[cat].fillOpacity !== undefined ? spec.cats[cat].fillOpacity : 0.1;
        f = L.polygon(geom, st);
      }
      if (row[3]) {
        f.bindPopup(function () { return popupNode(spec, row); }, { maxWidth: 320 });
        if (spec.tf >= 0) {
          f.bindTooltip(function () { return el("span", null, row[3][spec.tf]); },
                        { sticky: spec.kind !== "point", direction: "top" });
        }
      }
      features.push(f);
    });
    if (cluster) group.addLayers(features);
    else features.forEach(function (f) { group.addLayer(f); });
    KZ.layers[spec.key] = { spec: spec, group: group, features: features, map: map, cluster: cluster,
                            z: spec.z === undefined ? 5 : spec.z, spread: spread };
    if (spread.length) {
      /* markers at one spot side by side: marker k of n on a ring of ring_px pixels */
      var place = function () {
        if (!map._loaded) return;
        var z = map.getZoom();
        spread.forEach(function (s) {
          var k = s[2][0], n = s[2][1], ring = s[2][2], a = 2 * Math.PI * k / n;
          var p = map.project(s[1], z).add(L.point(ring * Math.sin(a), -ring * Math.cos(a)));
          s[0].setLatLng(map.unproject(p, z));
        });
      };
      map.on("zoomend viewreset load", place);
      place();
    }
    return group;
  };

  /* The legend lists the layers that are switched on; keeps the draw order (seats on top). */
  KZ.updateLegend = function (map) {
    var blocks = document.querySelectorAll("#kz-legend .kz-leg");
    for (var i = 0; i < blocks.length; i++) {
      var rec = KZ.layers[blocks[i].getAttribute("data-layer")];
      blocks[i].style.display = rec && map.hasLayer(rec.group) ? "" : "none";
    }
  };

  KZ.watchLayers = function (map) {
    map.on("overlayadd", function (ev) {
      /* a layer switched on is drawn on top; lift the layers that belong above it */
      var added = null;
      Object.keys(KZ.layers).forEach(function (k) { if (KZ.layers[k].group === ev.layer) added = KZ.layers[k]; });
      if (added) {
        Object.keys(KZ.layers).map(function (k) { return KZ.layers[k]; })
          .filter(function (r) { return r.z > added.z && map.hasLayer(r.group); })
          .sort(function (a, b) { return a.z - b.z; })
          .forEach(function (r) { if (typeof r.group.bringToFront === "function") r.group.bringToFront(); });
      }
      KZ.updateLegend(map);
    });
    map.on("overlayremove", function () { KZ.updateLegend(map); });
    KZ.updateLegend(map);
  };

  /* Search by name over KZ.searchIndex entries [name, detail, layerKey, featureIndex]. */
  KZ.addSearch = function (map, index, placeholder) {
    KZ.searchIndex = index;
    var Search = L.Control.extend({
      options: { position: "topleft" },
      onAdd: function () {
        var box = el("div", "kz-search leaflet-bar");
        var input = el("input");
        input.type = "search";
        input.placeholder = placeholder;
        input.setAttribute("aria-label", placeholder);
        var list = el("ul", "kz-search-results");
        box.appendChild(input);
        box.appendChild(list);
        L.DomEvent.disableClickPropagation(box);
        L.DomEvent.disableScrollPropagation(box);
        input.addEventListener("input", function () { KZ.renderResults(map, list, input.value); });
        input.addEventListener("keydown", function (ev) {
          if (ev.key === "Enter" && list.firstChild) list.firstChild.click();
        });
        return box;
      }
    });
    map.addControl(new Search());
  };

  /* Entries [name, detail, layerKey, featureIndex, code]: matched by name or by code/id;
   * exact matches first. */
  KZ.find = function (query) {
    var q = String(query || "").trim().toLowerCase();
    if (!q) return [];
    var exact = [], part = [];
    for (var i = 0; i < KZ.searchIndex.length; i++) {
      var e = KZ.searchIndex[i];
      var name = String(e[0]).toLowerCase(), code = String(e[4] || "").toLowerCase();
      if (name === q || code === q) exact.push(e);
      else if (name.indexOf(q) >= 0 || (code && code.indexOf(q) >= 0)) part.push(e);
      if (exact.length >= 12) break;
    }
    return exact.concat(part).slice(0, 12);
  };

  KZ.renderResults = function (map, list, query) {
    while (list.firstChild) list.removeChild(list.firstChild);
    var hits = KZ.find(query);
    if (query && !hits.length) list.appendChild(el("li", "kz-search-none", "无结果 / no match"));
    hits.forEach(function (e) {
      var li = el("li", "kz-search-hit");
      li.appendChild(el("span", "kz-search-name", e[0]));
      var extra = [e[4], e[1]].filter(function (x) { return x; }).join(" · ");
      if (extra) li.appendChild(el("span", "kz-search-detail", " " + extra));
      li.tabIndex = 0;
      li.addEventListener("click", function () { KZ.show(map, e[2], e[3]); });
      list.appendChild(li);
    });
  };

  /* Go to feature i of layer key and open its popup (switching the layer on if it is off).
   * The popup is opened on the map at the feature's place, not through the marker: a marker
   * inside a cluster (or of a layer just switched on) may not be drawn yet, and the popup must
   * not wait for that. The view jumps (no animation) to a zoom where clusters are split. */
  KZ.show = function (map, key, i) {
    var rec = KZ.layers[key];
    if (!rec) return;
    /* a zoom animation still running (a click right after load) would end on its own target
     * and undo this view: show the feature once it has ended */
    if (map._animatingZoom) { map.once("zoomend", function () { KZ.show(map, key, i); }); return; }
    var f = rec.features[i], row = rec.spec.data[i];
    if (!map.hasLayer(rec.group)) { map.addLayer(rec.group); KZ.updateLegend(map); }
    var ll = f.getLatLng ? f.getLatLng() : f.getBounds().getCenter();
    var zoom = Math.max(map.getZoom(), rec.cluster ? 14 : 13);
    map.setView(ll, zoom, { animate: false });
    L.popup({ maxWidth: 320 }).setLatLng(ll).setContent(popupNode(rec.spec, row)).openOn(map);
  };

  /* Popups pan clear of the panels in the top corners (title, search, layer switcher), not only
   * of the map edge: Leaflet's own autoPan knows the map edge only, so a popup near the top could
   * open under the title box with its close button out of reach. The top padding is the bottom
   * of the lowest top panel that the popup overlaps horizontally. */
  function panelsAbove(map, box) {
    var mr = map.getContainer().getBoundingClientRect(), bottom = 0;
    var nodes = map.getContainer().querySelectorAll(".leaflet-top .leaflet-control");
    for (var k = 0; k < nodes.length; k++) {
      var c = nodes[k].getBoundingClientRect();
      if (!c.width || !c.height) continue;
      if (c.right > box.left && c.left < box.right) bottom = Math.max(bottom, c.bottom - mr.top);
    }
    return bottom;
  }
  if (L.Popup && L.Popup.prototype._adjustPan) {
    var leafletAdjustPan = L.Popup.prototype._adjustPan;
    L.Popup.prototype._adjustPan = function () {
      if (this._map && this._container && this.options.autoPan) {
        var top = panelsAbove(this._map, this._container.getBoundingClientRect());
        var pad = L.point(this.options.autoPanPadding || [5, 5]);
        this.options.autoPanPaddingTopLeft = top ? L.point(pad.x, top + 8) : null;
      }
      return leafletAdjustPan.apply(this, arguments);
    };
  }

  /* Move a server-built element (legend, title, notes) into a Leaflet control. */
  KZ.addPanel = function (map, id, position) {
    var node = document.getElementById(id);
    if (!node) return;
    var Panel = L.Control.extend({
      options: { position: position },
      onAdd: function () {
        L.DomEvent.disableClickPropagation(node);
        L.DomEvent.disableScrollPropagation(node);
        node.style.display = "";
        return node;
      }
    });
    map.addControl(new Panel());
  };

  /* North arrow control (pure CSS/text, no image). */
  KZ.addNorthArrow = function (map) {
    var North = L.Control.extend({
      options: { position: "topleft" },
      onAdd: function () {
        var d = el("div", "kz-north", "▲");
        d.appendChild(el("div", null, "N 北"));
        d.title = "North / 北";
        return d;
      }
    });
    map.addControl(new North());
  };
})();
