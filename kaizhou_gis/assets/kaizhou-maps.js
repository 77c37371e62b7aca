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
    var table = el("table");
    for (var i = 0; i < spec.f.length; i++) {
      var v = props[i];
      if (i === spec.tf || v === null || v === undefined || v === "") continue;
      var tr = el("tr");
      tr.appendChild(el("th", null, spec.f[i]));
      tr.appendChild(el("td", null, v));
      table.appendChild(tr);
    }
    box.appendChild(table);
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

  /* Build one overlay from its spec; returns a Leaflet layer (a group). */
  KZ.layer = function (map, spec) {
    var cluster = spec.cluster && typeof L.markerClusterGroup === "function";
    var group = cluster
      ? L.markerClusterGroup({ showCoverageOnHover: false, maxClusterRadius: 45, disableClusteringAtZoom: 14,
                               chunkedLoading: true })
      : L.featureGroup();
    var features = [];
    spec.data.forEach(function (row, i) {
      var geom = row[0], cat = row[1], size = row[2], f;
      var st = styleOf(spec, cat);
      if (spec.kind === "point") {
        st.radius = size || spec.radius || 5;
        f = L.circleMarker(geom, st);
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
    KZ.layers[spec.key] = { spec: spec, group: group, features: features, map: map, cluster: cluster };
    return group;
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

  KZ.find = function (query) {
    var q = String(query || "").trim().toLowerCase();
    if (!q) return [];
    var hits = [];
    for (var i = 0; i < KZ.searchIndex.length && hits.length < 12; i++) {
      var e = KZ.searchIndex[i];
      if (String(e[0]).toLowerCase().indexOf(q) >= 0) hits.push(e);
    }
    return hits;
  };

  KZ.renderResults = function (map, list, query) {
    while (list.firstChild) list.removeChild(list.firstChild);
    var hits = KZ.find(query);
    if (query && !hits.length) list.appendChild(el("li", "kz-search-none", "无结果 / no match"));
    hits.forEach(function (e) {
      var li = el("li", "kz-search-hit");
      li.appendChild(el("span", "kz-search-name", e[0]));
      if (e[1]) li.appendChild(el("span", "kz-search-detail", " " + e[1]));
      li.tabIndex = 0;
      li.addEventListener("click", function () { KZ.show(map, e[2], e[3]); });
      list.appendChild(li);
    });
  };

  /* Pan to feature i of layer key and open its popup (adds the layer if it is switched off). */
  KZ.show = function (map, key, i) {
    var rec = KZ.layers[key];
    if (!rec) return;
    var f = rec.features[i];
    if (!map.hasLayer(rec.group)) map.addLayer(rec.group);
    var open = function () {
      map.setView(f.getLatLng(), Math.max(map.getZoom(), 13));
      f.openPopup();
    };
    if (rec.cluster) rec.group.zoomToShowLayer(f, open);
    else open();
  };

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
