// Row menus (<details class="row-menu">) of the console's tables: they close on a click
// elsewhere and on Escape (focus back on their button). Used as useEffect(() => closeRowMenusOutside(), []).
export function closeRowMenusOutside() {
  const menus = () => document.querySelectorAll("details.row-menu[open]");
  const click = (event) => {
    for (const menu of menus()) if (!menu.contains(event.target)) menu.open = false;
  };
  const key = (event) => {
    if (event.key !== "Escape") return;
    for (const menu of menus()) {
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  };
  document.addEventListener("click", click);
  document.addEventListener("keydown", key);
  return () => {
    document.removeEventListener("click", click);
    document.removeEventListener("keydown", key);
  };
}
