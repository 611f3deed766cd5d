// The shared HTML page (see page.h).
#include "makemore/page.h"

#include <filesystem>

#include "makemore/plot.h"

namespace mm::page {

namespace {

const char* kStyle = R"(
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; max-width: 1000px; margin: 24px auto; padding: 0 16px; color: #222; }
body.wide { max-width: 1500px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
nav { font-size: 13px; margin: 0 0 12px 0; } nav a { margin-right: 14px; color: #1f5fa8; text-decoration: none; }
table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ddd; padding: 4px 10px; text-align: right; } td { white-space: nowrap; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
pre { background: #f7f7f7; padding: 10px; overflow-x: auto; font-size: 12px; max-height: 420px; }
figure { margin: 18px 0; } .figtitle { font-weight: bold; font-size: 14px; margin-bottom: 6px; } figcaption { font-size: 13px; color: #555; margin-top: 4px; }
svg { max-width: 100%; height: auto; }
img.pixelated { image-rendering: pixelated; border: 1px solid #999; max-width: 100%; }
.figs { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; } .figs figure { margin: 6px 0; flex: 1 1 300px; min-width: 0; }
.missing { color: #8a6d00; background: #fff8e1; padding: 6px 10px; border-left: 3px solid #e0b000; }
.finding { border-left: 4px solid #d62728; background: #fdf2f2; padding: 8px 12px; margin: 10px 0; }
.ok { border-left: 4px solid #2ca02c; background: #f2fbf2; padding: 8px 12px; }
.samples { columns: 4 12em; column-gap: 3.5em; font-family: "DejaVu Sans Mono", monospace; } .samples li { overflow-wrap: anywhere; break-inside: avoid; } .meta { color: #666; font-size: 13px; }
tr.trained td { background: #e6f4e6; } tr.stuck td { background: #fbeee0; } tr.diverged td, tr.failed td { background: #f6dcdc; }
)";

}  // namespace

std::string escape(std::string_view s) { return plot::xml_escape(s); }

const char* stylesheet() { return kStyle; }

std::string relative_to_page(const std::string& page_file, const std::string& target) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir = fs::weakly_canonical(fs::absolute(target), ec);
  const fs::path page_dir = fs::weakly_canonical(fs::absolute(page_file).parent_path(), ec);
  const fs::path rel = dir.lexically_proximate(page_dir);
  if (rel.empty() || rel == ".") return ".";
  return rel.is_absolute() ? dir.filename().string() : rel.string();
}

std::string Table::html() const {
  auto cell = [this](const char* tag, std::size_t col, const std::string& text) {
    const std::string cls = col < left_columns ? " class=\"l\"" : "";
    return std::string("<") + tag + cls + ">" + escape(text) + "</" + tag + ">";
  };
  std::string o = "<table><tr>";
  for (std::size_t c = 0; c < header.size(); ++c) o += cell("th", c, header[c]);
  o += "</tr>";
  for (const auto& r : rows) {
    o += r.css_class.empty() ? "<tr>" : "<tr class=\"" + escape(r.css_class) + "\">";
    for (std::size_t c = 0; c < r.cells.size(); ++c) o += cell("td", c, r.cells[c]);
    o += "</tr>";
  }
  return o + "</table>\n";
}

void Page::section(const std::string& id, const std::string& title) {
  nav_.emplace_back(id, title);
  body_ += "<h2 id=\"" + escape(id) + "\">" + escape(title) + "</h2>\n";
}

void Page::paragraph(const std::string& text, const std::string& css_class) {
  body_ += (css_class.empty() ? "<p>" : "<p class=\"" + escape(css_class) + "\">") + escape(text) + "</p>\n";
}

std::string Page::figure_html(const Figure& f) {
  figure_ids_.push_back(f.id);
  std::string o = "<figure id=\"fig-" + escape(f.id) + "\">";
  if (!f.png.empty()) {
    // SVG figures carry their title inside; a bitmap gets one above it.
    o += "<div class=\"figtitle\">" + escape(f.title) + "</div>";
    o += "<img class=\"pixelated\" alt=\"" + escape(f.title) + "\" src=\"data:image/png;base64," + plot::base64_encode(f.png) +
         "\">";
  } else {
    // Inline SVG needs no namespace declaration; dropping it keeps the page free of URLs.
    std::string svg = f.svg;
    const std::string ns = " xmlns=\"http://www.w3.org/2000/svg\"";
    if (auto p = svg.find(ns); p != std::string::npos) svg.erase(p, ns.size());
    o += svg;
  }
  return o + "<figcaption>" + escape(f.caption) + "</figcaption></figure>\n";
}

void Page::figure(const Figure& f) { body_ += figure_html(f); }

void Page::figure_row(const std::vector<Figure>& figs) {
  body_ += "<div class=\"figs\">\n";
  for (const auto& f : figs) body_ += figure_html(f);
  body_ += "</div>\n";
}

void Page::not_drawn(const std::string& title, const std::string& why) {
  body_ += "<p class=\"missing\"><b>" + escape(title) + "</b>: not drawn; " + escape(why) + "</p>\n";
}

std::string Page::document() const {
  std::string nav;
  if (!nav_.empty()) {
    nav = "<nav>";
    for (const auto& [id, title] : nav_) nav += "<a href=\"#" + escape(id) + "\">" + escape(title) + "</a>";
    nav += "</nav>\n";
  }
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" + escape(title_) + "</title>\n<style>" +
         kStyle + "</style>\n</head>\n<body" + (wide_ ? " class=\"wide\"" : "") + ">\n" + nav + body_ + "</body>\n</html>\n";
}

}  // namespace mm::page
