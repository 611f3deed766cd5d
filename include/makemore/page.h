// One self-contained HTML page (no scripts, nothing fetched: figures inline as <svg> or PNG
// data: URIs) with one stylesheet, shared by every page makemore writes: the run report
// (report.h), the comparison of runs (compare.h) and the two studies' study.html. A page is a
// title, a navigation bar of its sections, and a body built from sections, tables, figures and
// notes; every text that reaches it goes through escape() (tables, titles, captions).
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mm::page {

// &, <, >, " and ' escaped for HTML text and attribute values (control characters dropped).
std::string escape(std::string_view s);

// How a page at `page_file` names `target` (a run folder): relative to the page's folder ("."
// for that folder itself), never absolute; a target on another root gets its own name.
std::string relative_to_page(const std::string& page_file, const std::string& target);

// The stylesheet every page carries inline.
const char* stylesheet();

// A figure: an SVG document or PNG bytes, shown with a title and a caption. Also written as a
// file (id + ".svg" or ".png") beside the page by the writers that keep figures.
struct Figure {
  std::string id, title, caption;
  std::string svg;  // either an SVG document ...
  std::string png;  // ... or PNG bytes
  std::string file() const { return id + (png.empty() ? ".svg" : ".png"); }
};

// A table of text cells (escaped), with the first `left_columns` columns left-aligned (the
// rest right-aligned, for numbers); a row may carry a CSS class (the studies color rows).
struct Table {
  explicit Table(std::vector<std::string> head, std::size_t left = 1) : header(std::move(head)), left_columns(left) {}
  std::vector<std::string> header;
  std::size_t left_columns = 1;
  struct Row {
    std::vector<std::string> cells;
    std::string css_class;
  };
  std::vector<Row> rows;
  void add(std::vector<std::string> cells, std::string css_class = "") {
    rows.push_back({std::move(cells), std::move(css_class)});
  }
  std::string html() const;
};

class Page {
 public:
  // wide: for pages of side-by-side figures (the studies' heatmaps, compare's maps).
  explicit Page(std::string title, bool wide = false) : title_(std::move(title)), wide_(wide) {}

  void h1(const std::string& text) { body_ += "<h1>" + escape(text) + "</h1>\n"; }
  // A section heading (<h2 id=...>) that the navigation bar links to.
  void section(const std::string& id, const std::string& title);
  void paragraph(const std::string& text, const std::string& css_class = "");
  void html(const std::string& raw) { body_ += raw; }  // already escaped markup
  void table(const Table& t) { body_ += t.html(); }
  void figure(const Figure& f);
  // Figures next to one another (wrapping on a narrow window).
  void figure_row(const std::vector<Figure>& figs);
  // "<title>: not drawn; <why>" in the page's note style.
  void not_drawn(const std::string& title, const std::string& why);

  const std::vector<std::string>& figure_ids() const { return figure_ids_; }
  // The whole document: head (title, stylesheet), the navigation bar, the body.
  std::string document() const;

 private:
  std::string figure_html(const Figure& f);
  std::string title_, body_;
  bool wide_;
  std::vector<std::pair<std::string, std::string>> nav_;  // (id, title)
  std::vector<std::string> figure_ids_;
};

}  // namespace mm::page
