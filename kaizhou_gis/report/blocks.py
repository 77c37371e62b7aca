"""The report as (title, kind, content) blocks shared by the HTML and Markdown renderers."""
from __future__ import annotations

from typing import Any

import pandas as pd

from kaizhou_gis import provenance
from kaizhou_gis.layers import leftout
from kaizhou_gis.report.common import NOT_DERIVABLE, NOT_DERIVABLE_ZH
from kaizhou_gis.report.frames import _cal
from kaizhou_gis.report.text import _txt, _years_plain

#: A block of the report: (title, kind, content); see :func:`_sections`.
Block = tuple[str, str, list]


def _indicator_rows(report: dict) -> tuple[list[str], list[list[Any]]]:
    keys = list(report["indicators"][0]) if report["indicators"] else []
    bkey = next((k for k in keys if k.startswith("baseline_") and k[9:].isdigit()), "")
    tkeys = [k for k in keys if k.startswith("target_") and k[7:].isdigit()]
    header = (["#", "指标 / indicator", "属性 / kind", "单位 / unit", bkey[9:]]
              + [f"{k[7:]} 目标 / target" for k in tkeys]
              + ["计算值 / computed", "说明 / basis or reason"])
    rows = []
    for i in report["indicators"]:
        if i["status"] == "computed":
            val = _txt(i["computed"])
            if i.get("computed_after") is not None:
                val += f" → {_txt(i['computed_after'])}"
            why = i.get("comment", "")
        elif i["status"] == "not_derivable" and str(i.get("reason", "")).startswith(NOT_DERIVABLE):
            val = "–"
            why = f"{NOT_DERIVABLE_ZH} / {NOT_DERIVABLE} *"
        else:
            val = "–"
            why = i.get("reason", "")
        if i.get("note"):
            why = f"{why} (plan / 规划: {i['note']})"
        targets = [i[k] for k in tkeys]
        rows.append([i["id"], f"{i['name_zh']} / {i['name_en']}",
                     {"binding": "约束性 binding", "expected": "预期性 expected"}.get(i["kind"],
                                                                                   i["kind"]),
                     i["unit"], i.get(bkey), *targets, val, why])
    return header, rows


def _sections(report: dict, tw: pd.DataFrame) -> list[Block]:
    """The report as (title, kind, content) blocks shared by the HTML and Markdown renderers.

    ``kind`` is "table" (content = [header, rows]), "text" (content = list of lines) or "chart"
    (content = [chart name, caption]).
    """
    return [*_overview_blocks(report), *_indicator_blocks(report), *_relocation_blocks(report),
            *_access_blocks(report), *_industry_blocks(report), *_township_blocks(tw),
            *_settings_blocks(report), *_provenance_blocks(report), *_inputs_blocks(report)]


def _overview_blocks(report: dict) -> list[Block]:
    """The overview: district, plan file, steps, inputs, problems and how to read the figures."""
    out: list[Block] = []
    scope = report["scope"]["township_name"]
    intro = [f"{report['district']['name']} ({report['district']['name_en']}) — "
             f"{report['title']}" + (f" — {scope}" if scope else ""),
             f"Plan file / 规划参数文件: {report['plan_file']}"]
    for n, s in report["steps"].items():
        intro.append(f"step {n}: {s}")
    inp = report.get("inputs")
    if inp:
        par = ", ".join(f"{k} = {v:g}" if isinstance(v, (int, float)) else f"{k} = {v}"
                        for k, v in inp["parameters"].items())
        intro.append(f"Inputs / 输入: {par}"
                     + (" (command-line override / 命令行覆盖)" if inp["overrides"] else "")
                     + f"; inputs fingerprint / 输入指纹 {inp['fingerprint'][:12]} "
                       f"(section 八 / see section 8)")
        for o in inp["other_inputs_in_folder"]:
            intro.append(f"NOT USED / 未采用: {o['folder']} in this folder ({o['scope']}, "
                         f"`{o['command']}`) was made from other inputs: {o['why']}. This report "
                         f"recomputed {o['step']} from the inputs above. / 本目录中的 {o['folder']} "
                         f"由其他输入生成，本报告未采用，已按上述输入重新计算。")
    for prob in report.get("problems", []):
        intro.append(f"problem / 问题: {prob}")
    rel0 = report.get("relocation", {})
    intro.append("搬迁对象按建档立卡贫困人口计：规划第五章的年度任务（" + "、".join(
        f"{y}年{q:,}人" for y, q in sorted(rel0.get("plan", {}).get("yearly_people", {}).items()))
        + "）指建档立卡贫困人口；整村（自然村）搬迁时其他居民同步搬迁，单独列出，不计入任务。 / "
        "Relocation counts registered poor people (建档立卡贫困人口): the plan's yearly quotas (ch.5) "
        "are registered poor; whole settlements move, their other residents move with them "
        "(同步搬迁) and are reported separately, outside the quotas."
        + (f" Basis of the registered poor figures: {rel0['poor_population_basis']}."
           if rel0.get("poor_population_basis") else ""))
    intro.append(f"通畅率按行政村（村）计，不含社区；“{provenance.PLANNED_ZH}”的数值为规划结果，"
                 f"不是已实现的成绩。 / Village 通畅 counts 行政村 (村) only, not 社区; figures "
                 f"'{provenance.PLANNED_EN}' are planned results, not achievements.")
    out.append(("概况 / Overview", "text", intro))
    return out


def _indicator_blocks(report: dict) -> list[Block]:
    """Section 一: the plan's main indicators."""
    out: list[Block] = []
    out.append(("一、主要指标 / Main indicators (ch.1 专栏)", "table", list(_indicator_rows(report))))
    if any(i["status"] == "not_derivable" for i in report["indicators"]):
        out.append(("", "text", ["* These indicators need survey or administrative statistics "
                                 "(registered poor, income, water supply, housing, schooling, "
                                 "health, village finances); the layers hold places, households, "
                                 "population, poverty-village flags, roads and elevation only. / "
                                 "这些指标需要统计调查数据，图层只包含位置、户数、人口、贫困村标识、"
                                 "道路和高程。"]))
    return out


def _relocation_blocks(report: dict) -> list[Block]:
    """Section 二: relocation against the plan, the elevation chart and the yearly schedule."""
    out: list[Block] = []
    rel = report["relocation"]
    p = rel["plan"]
    if rel.get("status") == "ok":
        cal = rel.get("calibrated", {})
        poor_cal = cal.get("registered_poor") and "estimated" not in rel["poor_population_basis"]
        rows = [["搬迁对象（建档立卡贫困人口）/ registered poor people to relocate",
                 p["people_target"], rel["candidate_poor_people"],
                 f"in the candidate settlements; {_txt(rel['candidate_poor_vs_target_pct'])} % of "
                 f"plan; basis: {rel['poor_population_basis']}{_cal(poor_cal)}"],
                ["同步搬迁人口 / other residents moving with them (not in the plan's target)", None,
                 rel["candidate_accompanying_people"], "whole settlements move together"],
                ["拟搬迁自然村总人口 / all residents of the candidate settlements", None,
                 rel["candidate_people"], f"{rel['candidate_households']:,} households"],
                ["拟整体搬迁自然村 / candidate settlements", None, rel["candidates"], ""],
                [f"海拔{p['threshold_m']:g}米以上自然村 / settlements above {p['threshold_m']:g} m",
                 p["natural_villages_above_threshold"], rel["above_threshold"],
                 "plan: the out-migration area's natural villages (ch.5); here: every settlement "
                 "of the layer"],
                ["占比 / share above threshold (%)", p["share_above_threshold_pct"],
                 rel["share_above_threshold_pct"], f"of {rel['settlements']:,} settlements "
                                                   f"(plan: of {p['natural_villages_in_area']:,})"
                                                   f"{_cal(cal.get('share_above_threshold'))}"]]
        out.append(("二、高山生态扶贫搬迁 / Relocation vs the plan (ch.5)", "table",
                    [["项目 / item", "规划 / plan", "图层计算 / layers", "备注 / note"], rows]))
        out.append(("", "chart", ["elevation", "自然村海拔分布与搬迁阈值 / settlement elevations "
                                                "and the plan's threshold"]))
        sched = [[str(r["year"]), r["plan_people"], r["poor_people"], r["accompanying_people"],
                  r["people"], r["settlements"], r["households"]] for r in rel["schedule"]]
        out.append(("搬迁年度安排（规划）/ Yearly schedule (planned)", "table",
                    [["年份 / year", "规划搬迁建档立卡贫困人口 / plan quota (registered poor)",
                      "搬迁对象（建档立卡贫困人口）/ registered poor scheduled",
                      "同步搬迁人口 / other residents moving with them",
                      "总人口 / all residents", "自然村 / settlements", "户数 / households"],
                     sched]))
        extra = []
        if "unscheduled_candidates" in rel:
            extra.append(f"unscheduled candidates / 未排期: {rel['unscheduled_candidates']} "
                         f"settlements ({rel.get('unscheduled_poor_people', 0):,} registered poor, "
                         f"{rel['unscheduled_people']:,} people in all)")
        if "sites" in rel:
            s = rel["sites"]
            extra.append(f"resettlement sites / 安置点: {s['count']}, capacity "
                         f"{s['capacity_households']:,} households, assigned "
                         f"{s['assigned_households']:,}")
        if "assignment" in rel:
            a = rel["assignment"]
            extra.append(f"assigned / 已分配: {a['households']:,} households, mean distance "
                         f"{_txt(a['mean_distance_km'])} km (max {_txt(a['max_distance_km'])} km)")
        if "unassigned" in rel:
            u = rel["unassigned"]
            extra.append(f"unassigned / 未分配: {u['settlements']} settlements, "
                         f"{u['households']:,} households (relocation/ lists each with its reason)")
            for reason, n in list(u["reasons"].items())[:3]:
                extra.append(f"{n} × {reason if len(reason) <= 90 else reason[:87] + '...'}")
        if rel.get("candidate_flags"):
            extra.append("candidate reasons / 候选原因: " + _txt(rel["candidate_flags"]))
        extra += [f"left out / 未纳入分析: {x}" for x in leftout.relocation_lines(rel["left_out"])]
        extra += rel.get("notes", [])
        if extra:
            out.append(("", "text", extra))
    else:
        out.append(("二、高山生态扶贫搬迁 / Relocation vs the plan (ch.5)", "text",
                    [rel["message"], rel["message_zh"],
                     f"plan: {p['people_target']:,} registered poor people; {p['natural_villages_above_threshold']}"
                     f" natural villages above {p['threshold_m']:g} m "
                     f"({p['share_above_threshold_pct']} %)"]))
    return out


def _access_blocks(report: dict) -> list[Block]:
    """Section 三: the rural roads scorecard, proposed works and the cost curve."""
    out: list[Block] = []
    acc = report["access"]
    names = {"village_tongchang_pct": "行政村通畅率（村，不含社区）/ administrative villages (村) tongchang",
             "settlement_tongda_pct": "30户或100人以上自然村通达率 / settlements tongda",
             "settlement_tongchang_pct": "30户或100人以上自然村通畅率 / settlements tongchang"}
    if acc.get("status") == "ok":
        cal = report.get("calibrated", {}).get("village_tongchang_before")

        def met(r):
            if r["meets_target_after"] is None:
                return f"{provenance.NO_TARGET_ZH} / {provenance.NO_TARGET_EN}"
            return "是 / yes (planned)" if r["meets_target_after"] else "否 / no"

        rows = [[names[r["indicator"]], r["target_pct"],
                 f"{_txt(r['before_pct'])}{_cal(cal and r['indicator'] == 'village_tongchang_pct')}",
                 r["after_pct"], met(r)] for r in acc["scorecard"]]
        out.append(("三、农村道路 / Rural roads scorecard (ch.1, ch.11)", "table",
                    [["指标 / indicator", "目标 / target %", "现状 / now %",
                      f"{provenance.PLANNED_ZH} / {provenance.PLANNED_EN} %",
                      "达标（规划）/ target met (planned)"], rows]))
        w = acc["works"]
        wrows = [[r["type"], r["works"], r["km"], round(r["cost_yuan"] / 1e4, 1)]
                 for r in w["by_type"]]
        wrows.append(["合计 / total", w["count"], w["km"], round(w["cost_yuan"] / 1e4, 1)])
        out.append(("建议工程 / Proposed works", "table",
                    [["类型 / type", "项数 / works", "里程 / km", "投资 / cost (万元)"], wrows]))
        out.append(("", "text", [f"plan / 规划: 累计完成农村公路建设{acc['plan_roads_km_2020']:,.0f}公里 "
                                 f"(cumulative rural road construction by end-{acc.get('plan_period_end', '')}), "
                                 f"{acc['plan_poverty_village_roads_km']:,.0f} km poverty-village "
                                 f"roads; the works here are proposals (planned), not roads built"]
                    + ([f"villages not 通畅 before, by reason: {_txt(acc['village_reasons'])}"]
                       if acc.get("village_reasons") else [])
                    + [f"left out / 未纳入分析: {x}" for x in
                       leftout.access_lines(acc["left_out"], acc["reach_distance_m"])]))
        if acc.get("cost_curve"):
            out.append(("", "chart", ["cost_curve", "投资-通畅率曲线 / cost curve: access "
                                                    "shares as works are added, cheapest first"]))
    else:
        out.append(("三、农村道路 / Rural roads scorecard (ch.1, ch.11)", "text",
                    [acc["message"], acc["message_zh"]]))
    return out


def _industry_blocks(report: dict) -> list[Block]:
    """Section 四: industry projects by category and product."""
    out: list[Block] = []
    ind = report["industry"]
    if ind.get("status") == "ok":
        rows = [[c["category"], c["projects"],
                 "; ".join(f"{x['product']} {_txt(x['total'])} {x['unit']}"
                           for x in c["scale_by_product"]),
                 c["hosts_named"], c["hosts_placed"]] for c in ind["by_category"]]
        out.append(("四、产业扶贫 / Industry projects vs the plan (ch.3)", "table",
                    [["类别 / category", "项目 / projects",
                      "规划规模（按产品和单位）/ plan scale per product and unit",
                      "规划点名村 / villages named", "已定位 / villages placed"], rows]))
        lines = [f"projects / 项目: {ind['projects']}, host villages / 承载村: "
                 f"{ind['host_villages']}"]
        if ind.get("unresolved_names") is not None:
            lines.append(f"place names of the plan not placed on the layers / 未定位地名: "
                         f"{ind['unresolved_names']} (industry/unresolved.csv lists each with "
                         f"its reason)")
            for reason, n in list((ind.get("unresolved_reasons") or {}).items())[:3]:
                short = reason if len(reason) <= 90 else reason[:87] + "..."
                lines.append(f"{n} × {short}")
        out.append(("", "text", lines))
        if ind.get("products"):
            prow = [[p.get("category"), f"{p.get('product', '')} / {p.get('product_en', '')}",
                     p.get("plan_total"), p.get("unit"), p.get("n_hosts_named"), p.get("n_hosts"),
                     p.get("placed_scale")] for p in ind["products"]]
            out.append(("产业规模与落地 / Plan totals and placement by product", "table",
                        [["类别 / category", "产品 / product", "规划规模 / plan total",
                          "单位 / unit", "点名村 / named", "已定位 / placed",
                          "已分配规模 / placed scale"], prow]))
    else:
        out.append(("四、产业扶贫 / Industry projects vs the plan (ch.3)", "text",
                    [ind["message"], ind["message_zh"]]))
    return out


def _township_blocks(tw: pd.DataFrame) -> list[Block]:
    """Section 五: the per-township table and chart."""
    out: list[Block] = []
    labels = tw.attrs.get("labels_zh", {})
    header = [f"{labels.get(c, c)} / {c}" for c in tw.columns]
    out.append(("五、分乡镇统计 / Per township", "table",
                [header, tw.astype(object).where(tw.notna(), None).values.tolist()]))
    out.append(("", "chart", ["townships", "分乡镇搬迁候选人口与通畅率 / relocation candidates "
                                           "and village tongchang by township"]))
    return out


def _settings_blocks(report: dict) -> list[Block]:
    """Section 六: the plan settings used."""
    out: list[Block] = []
    srows = [[s["key"], _years_plain(s["key"], s["value"]), s["source"]] for s in report["settings"]]
    out.append(("六、规划参数 / Plan settings used (value and source)", "table",
                [["参数 / setting", "值 / value", "来源 / source"], srows]))
    return out


def _provenance_blocks(report: dict) -> list[Block]:
    """Section 七: where the layers come from and which rows are synthesized."""
    out: list[Block] = []
    prov = report["provenance"]
    prow = [[lay["layer"], lay["rows"], lay["synthesized_rows"], lay["sources"]] for lay in prov["layers"]]
    out.append(("七、数据来源 / Data provenance", "table",
                [["图层 / layer", "行数 / rows", "合成行 / synthesized rows", "来源 / sources"],
                 prow]))
    lines = [f"layers / 图层: {prov['layers_source']}", f"DEM: {prov['dem']}"]
    if prov["attribution"]:
        lines.append(f"attribution / 署名: {prov['attribution']}")
    lines += prov["notes"]
    lines.append("Rows marked synthesized are stand-ins generated where no open data exists; "
                 "figures computed from them illustrate the method, not the district. / "
                 "标为合成的数据为无公开数据时生成的替代数据，相关计算仅示范方法。")
    if any(report.get("calibrated", {}).values()):
        lines.append(f"[{provenance.CALIBRATED_ZH} / {provenance.CALIBRATED_EN}]: the synthetic "
                     f"layers were built to match these plan figures (layers/README.md): "
                     + ", ".join(k for k, v in report["calibrated"].items() if v)
                     + "; they show that the pipeline reproduces its input, not a finding.")
    out.append(("", "text", lines))
    return out


def _inputs_blocks(report: dict) -> list[Block]:
    """Section 八: the inputs this report used."""
    out: list[Block] = []
    inp = report.get("inputs")
    if inp:
        rows = [["inputs fingerprint / 输入指纹", inp["fingerprint"]],
                ["plan file / 规划参数文件", f"{inp['plan_file']} (sha256 {str(inp['plan_file_sha256'])[:12]})"],
                ["overrides / 命令行覆盖", ", ".join(f"{k} = {v}" for k, v in inp["overrides"].items()) or "none / 无"],
                ["layers / 图层", inp["layers_source"]]]
        rows += [[f"layer {k} / 图层指纹", v[:16]] for k, v in inp["layers"].items()]
        rows += [[f"step {k} / 步骤", v] for k, v in inp["steps_used"].items()]
        rows += [[f"same inputs in this folder / 同输入: {o['step']}",
                  f"{o['scope']} (command in manifest.json / 命令见 manifest.json)"]
                 for o in inp["same_inputs_in_folder"]]
        rows += [[f"NOT USED / 未采用: {o['folder']}", f"{o['scope']}: {o['command']} — {o['why']}"]
                 for o in inp["other_inputs_in_folder"]]
        out.append(("八、本报告所用输入 / Inputs this report used", "table",
                    [["item / 项目", "value / 值"], rows]))
        out.append(("", "text", [
            "A --township command gives the district analysis's rows and figures for that "
            "township (quotas, site capacity and works are decided district-wide). Outputs with "
            "the same inputs fingerprint come from the same layers, plan and parameters; "
            "manifest.json in the output folder records every step's inputs and files. / "
            "--township 输出为全区分析中该乡镇的行与数值（年度指标、安置点容量和工程按全区确定）；"
            "输入指纹相同的输出来自相同的图层、规划和参数；输出目录中的 manifest.json 记录各步骤的输入和文件。"]))
    return out
