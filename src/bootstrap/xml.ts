/**
 * A small XML tree for OPNsense's config.xml: elements, attributes and text, nothing else
 * (config.xml has no mixed content, namespaces or DTD). Enough to read the factory default, edit
 * it and write it back in OPNsense's own layout (two-space indent, `<empty/>`). Comments and
 * processing instructions other than the XML declaration are dropped on reading.
 */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  /** Child elements, in order. */
  children: XmlElement[];
  /** Text content of a leaf (elements with children carry none). */
  text: string;
}

export class XmlSyntaxError extends Error {
  constructor(message: string, offset: number) {
    super(`${message} at offset ${offset}`);
    this.name = 'XmlSyntaxError';
  }
}

const NAME = /[A-Za-z_][A-Za-z0-9_.:-]*/y;

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, e: string) => {
    if (e === 'amp') return '&';
    if (e === 'lt') return '<';
    if (e === 'gt') return '>';
    if (e === 'quot') return '"';
    if (e === 'apos') return "'";
    return String.fromCodePoint(e.startsWith('#x') ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
  });
}

export function escapeText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function escapeAttr(s: string): string {
  return escapeText(s).replace(/"/g, '&quot;');
}

export function parseXml(source: string): XmlElement {
  let i = 0;
  const skipMisc = () => {
    for (let guard = 0; guard < source.length + 1; guard++) {
      while (i < source.length && /\s/.test(source[i]!)) i++;
      if (source.startsWith('<?', i)) {
        const end = source.indexOf('?>', i);
        if (end < 0) throw new XmlSyntaxError('unterminated processing instruction', i);
        i = end + 2;
      } else if (source.startsWith('<!--', i)) {
        const end = source.indexOf('-->', i);
        if (end < 0) throw new XmlSyntaxError('unterminated comment', i);
        i = end + 3;
      } else return;
    }
  };
  const name = (): string => {
    NAME.lastIndex = i;
    const m = NAME.exec(source);
    if (!m) throw new XmlSyntaxError('expected a name', i);
    i += m[0].length;
    return m[0];
  };
  const element = (): XmlElement => {
    if (source[i] !== '<') throw new XmlSyntaxError('expected <', i);
    i++;
    const el: XmlElement = { name: name(), attrs: {}, children: [], text: '' };
    for (;;) {
      while (/\s/.test(source[i] ?? '')) i++;
      if (source.startsWith('/>', i)) {
        i += 2;
        return el;
      }
      if (source[i] === '>') {
        i++;
        break;
      }
      const key = name();
      while (/\s/.test(source[i] ?? '')) i++;
      if (source[i] !== '=') throw new XmlSyntaxError('expected =', i);
      i++;
      while (/\s/.test(source[i] ?? '')) i++;
      const q = source[i];
      if (q !== '"' && q !== "'") throw new XmlSyntaxError('expected a quoted value', i);
      const end = source.indexOf(q, i + 1);
      if (end < 0) throw new XmlSyntaxError('unterminated attribute', i);
      el.attrs[key] = decodeEntities(source.slice(i + 1, end));
      i = end + 1;
    }
    let text = '';
    for (;;) {
      if (i >= source.length) throw new XmlSyntaxError(`unterminated element <${el.name}>`, i);
      if (source.startsWith('</', i)) {
        i += 2;
        const closing = name();
        if (closing !== el.name) throw new XmlSyntaxError(`</${closing}> closes <${el.name}>`, i);
        while (/\s/.test(source[i] ?? '')) i++;
        if (source[i] !== '>') throw new XmlSyntaxError('expected >', i);
        i++;
        el.text = el.children.length ? '' : text.trim() === '' ? '' : text;
        return el;
      }
      if (source.startsWith('<!--', i)) {
        const end = source.indexOf('-->', i);
        if (end < 0) throw new XmlSyntaxError('unterminated comment', i);
        i = end + 3;
      } else if (source.startsWith('<![CDATA[', i)) {
        const end = source.indexOf(']]>', i);
        if (end < 0) throw new XmlSyntaxError('unterminated CDATA', i);
        text += source.slice(i + 9, end);
        i = end + 3;
      } else if (source[i] === '<') {
        el.children.push(element());
      } else {
        const next = source.indexOf('<', i);
        const end = next < 0 ? source.length : next;
        text += decodeEntities(source.slice(i, end));
        i = end;
      }
    }
  };
  skipMisc();
  const root = element();
  skipMisc();
  if (i < source.length) throw new XmlSyntaxError('content after the root element', i);
  return root;
}

export function serializeXml(root: XmlElement, declaration = '<?xml version="1.0"?>'): string {
  const lines: string[] = [declaration];
  const walk = (el: XmlElement, depth: number) => {
    const pad = '  '.repeat(depth);
    const attrs = Object.entries(el.attrs)
      .map(([k, v]) => ` ${k}="${escapeAttr(v)}"`)
      .join('');
    if (el.children.length) {
      lines.push(`${pad}<${el.name}${attrs}>`);
      for (const c of el.children) walk(c, depth + 1);
      lines.push(`${pad}</${el.name}>`);
    } else if (el.text === '') {
      lines.push(`${pad}<${el.name}${attrs}/>`);
    } else {
      lines.push(`${pad}<${el.name}${attrs}>${escapeText(el.text)}</${el.name}>`);
    }
  };
  walk(root, 0);
  return `${lines.join('\n')}\n`;
}

// ---- editing helpers -----------------------------------------------------------------------------

export function elem(name: string, text = '', children: XmlElement[] = []): XmlElement {
  return { name, attrs: {}, children, text };
}

export function child(parent: XmlElement, name: string): XmlElement | undefined {
  return parent.children.find((c) => c.name === name);
}

export function childrenNamed(parent: XmlElement, name: string): XmlElement[] {
  return parent.children.filter((c) => c.name === name);
}

/** The element at a slash-separated path below `root`, created (appended) where missing. */
export function ensurePath(root: XmlElement, path: string): XmlElement {
  let at = root;
  for (const part of path.split('/').filter(Boolean)) {
    let next = child(at, part);
    if (!next) {
      next = elem(part);
      at.text = '';
      at.children.push(next);
    }
    at = next;
  }
  return at;
}

export function findPath(root: XmlElement, path: string): XmlElement | undefined {
  let at: XmlElement | undefined = root;
  for (const part of path.split('/').filter(Boolean)) {
    at = at ? child(at, part) : undefined;
  }
  return at;
}

/** Sets a leaf's text (creating the path); keeps the element where it already is. */
export function setText(root: XmlElement, path: string, text: string): XmlElement {
  const el = ensurePath(root, path);
  el.children = [];
  el.text = text;
  return el;
}

/** Removes every child called `name`; returns how many there were. */
export function removeChildren(parent: XmlElement, name: string): number {
  const before = parent.children.length;
  parent.children = parent.children.filter((c) => c.name !== name);
  return before - parent.children.length;
}

/** Inserts `el` right after the last child named `after` (or at the end). */
export function insertAfter(parent: XmlElement, after: string, el: XmlElement): void {
  let idx = -1;
  parent.children.forEach((c, i) => {
    if (c.name === after) idx = i;
  });
  if (idx < 0) parent.children.push(el);
  else parent.children.splice(idx + 1, 0, el);
}

/** Every element's path from the root, e.g. `opnsense/system/user/name`, in document order. */
export function elementPaths(root: XmlElement): string[] {
  const out: string[] = [];
  const walk = (el: XmlElement, prefix: string) => {
    const p = prefix ? `${prefix}/${el.name}` : el.name;
    out.push(p);
    for (const c of el.children) walk(c, p);
  };
  walk(root, '');
  return out;
}
