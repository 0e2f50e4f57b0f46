/** Charts with Apache ECharts (bundled, tree-shaken): P&L over time, delta with its band, the scenario heat map. */

import { HeatmapChart, LineChart } from "echarts/charts";
import {
  AriaComponent,
  GridComponent,
  LegendComponent,
  MarkAreaComponent,
  TooltipComponent,
  VisualMapComponent,
} from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([
  LineChart,
  HeatmapChart,
  GridComponent,
  TooltipComponent,
  LegendComponent,
  MarkAreaComponent,
  VisualMapComponent,
  AriaComponent,
  CanvasRenderer,
]);

/** Okabe-Ito: distinguishable with every common colour-vision deficiency. */
export const PALETTE = {
  blue: "#0072B2",
  orange: "#E69F00",
  sky: "#56B4E9",
  vermillion: "#D55E00",
  green: "#009E73",
  purple: "#CC79A7",
  yellow: "#F0E442",
  black: "#000000",
};
// Diverging blue (gain) - white - orange/brown (loss): readable with red-green colour blindness.
const DIVERGING = ["#B35806", "#F1A340", "#FEE0B6", "#F7F7F7", "#D8DAEB", "#6BAED6", "#2166AC"];

const BASE = {
  animation: false,
  aria: { enabled: true, decal: { show: false } },
  textStyle: { fontFamily: "system-ui, sans-serif" },
  grid: { left: 64, right: 16, top: 36, bottom: 32 },
};

/** A time series chart. */
export class TimeChart {
  private readonly chart: echarts.ECharts;

  constructor(
    el: HTMLElement,
    private readonly label: string,
  ) {
    this.chart = echarts.init(el, undefined, { renderer: "canvas" });
    new ResizeObserver(() => this.chart.resize()).observe(el);
  }

  /** Draws `value` over time, with optional lower/upper band lines (points: [ms, value, lower?, upper?]). */
  show(points: number[][], valueName: string, band: boolean, description: string): void {
    const series: Record<string, unknown>[] = [
      {
        name: valueName,
        type: "line",
        showSymbol: false,
        data: points.map((p) => [p[0], p[1]]),
        lineStyle: { width: 2, color: PALETTE.blue },
        itemStyle: { color: PALETTE.blue },
      },
    ];
    if (band) {
      for (const [i, name] of [
        [2, "Band lower"],
        [3, "Band upper"],
      ] as const) {
        series.push({
          name,
          type: "line",
          showSymbol: false,
          data: points.map((p) => [p[0], p[i]]),
          lineStyle: { width: 2, type: "dashed", color: PALETTE.vermillion },
          itemStyle: { color: PALETTE.vermillion },
        });
      }
    }
    this.chart.setOption(
      {
        ...BASE,
        aria: { enabled: true, label: { description: `${this.label}. ${description}` } },
        tooltip: { trigger: "axis" },
        legend: { top: 4, data: series.map((s) => s.name as string) },
        xAxis: { type: "time", axisLabel: { hideOverlap: true } },
        yAxis: { type: "value", scale: true },
        series,
      },
      { notMerge: true },
    );
  }
}

/** The scenario grid as a heat map: price move across, volatility shift down, P&L as colour and label. */
export class HeatMap {
  private readonly chart: echarts.ECharts;

  constructor(private readonly el: HTMLElement) {
    this.chart = echarts.init(el, undefined, { renderer: "canvas" });
    new ResizeObserver(() => this.chart.resize()).observe(el);
  }

  show(moves: string[], shifts: string[], pnl: number[][], description: string): void {
    const data: [number, number, number][] = [];
    let extreme = 1;
    pnl.forEach((row, y) =>
      row.forEach((v, x) => {
        data.push([x, y, Math.round(v)]);
        extreme = Math.max(extreme, Math.abs(v));
      }),
    );
    this.chart.setOption(
      {
        ...BASE,
        aria: { enabled: true, label: { description } },
        grid: { left: 72, right: 16, top: 16, bottom: 84 },
        tooltip: {
          formatter: (p: { value: [number, number, number] }) =>
            `move ${moves[p.value[0]]}, vol ${shifts[p.value[1]]}: ${p.value[2].toLocaleString("en-US")} USD`,
        },
        xAxis: { type: "category", data: moves, name: "Underlying move", nameLocation: "middle", nameGap: 28 },
        yAxis: { type: "category", data: shifts, name: "Vol shift", nameLocation: "middle", nameGap: 56 },
        visualMap: {
          min: -extreme,
          max: extreme,
          calculable: false,
          orient: "horizontal",
          left: "center",
          bottom: 0,
          itemHeight: 160,
          inRange: { color: DIVERGING },
          text: ["gain", "loss"],
        },
        series: [
          {
            type: "heatmap",
            data,
            label: {
              // Cell labels need room; on a phone the tooltip and the table below carry the numbers.
              show: this.el.clientWidth >= 560,
              fontSize: 10,
              formatter: (p: { value: [number, number, number] }) => compact(p.value[2]),
            },
          },
        ],
      },
      { notMerge: true },
    );
  }
}

function compact(v: number): string {
  const sign = v < 0 ? "\u2212" : v > 0 ? "+" : "";
  const a = Math.abs(v);
  return sign + (a >= 1000 ? `${(a / 1000).toFixed(a >= 10_000 ? 0 : 1)}k` : a.toFixed(0));
}
