/**
 * Renders a Vega-Lite spec headlessly: compiled with vega-lite, laid out by a vega View with no
 * renderer (SVG text, no canvas dependency), and rasterised to PNG with resvg. Text is set in one
 * font family (DejaVu Sans where the system has it), named in the spec's config and loaded by resvg
 * from the system, so the SVG and the PNG match.
 */
import { Resvg } from "@resvg/resvg-js";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

export const CHART_FONT = "DejaVu Sans";

export interface RenderedChart {
  readonly svg: string;
  readonly png: Uint8Array;
  readonly widthPx: number;
  readonly heightPx: number;
}

/** The spec with the house font and background applied (kept beside the rendered files as .vl.json). */
export function withChartConfig(spec: TopLevelSpec): TopLevelSpec {
  const config = { font: CHART_FONT, background: "white", ...(spec.config ?? {}) };
  return { ...spec, config } as TopLevelSpec;
}

export async function renderChart(spec: TopLevelSpec, scale = 2): Promise<RenderedChart> {
  const compiled = compile(withChartConfig(spec)).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    const svg = await view.toSVG();
    const resvg = new Resvg(svg, {
      font: { loadSystemFonts: true, defaultFontFamily: CHART_FONT },
      fitTo: { mode: "zoom", value: scale },
    });
    const image = resvg.render();
    return { svg, png: new Uint8Array(image.asPng()), widthPx: image.width, heightPx: image.height };
  } finally {
    view.finalize();
  }
}
