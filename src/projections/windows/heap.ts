/** A binary min-heap by `compare`. */
export interface Heap<T> {
  push(item: T): void;
  pop(): T | undefined;
  peek(): T | undefined;
}

export function createHeap<T>(compare: (a: T, b: T) => number): Heap<T> {
  const items: T[] = [];
  return {
    push(item) {
      items.push(item);
      let i = items.length - 1;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (compare(items[i]!, items[parent]!) >= 0) break;
        [items[i], items[parent]] = [items[parent]!, items[i]!];
        i = parent;
      }
    },
    pop() {
      const top = items[0];
      const last = items.pop();
      if (items.length > 0 && last !== undefined) {
        items[0] = last;
        let i = 0;
        for (;;) {
          const left = 2 * i + 1;
          const right = left + 1;
          let smallest = i;
          if (left < items.length && compare(items[left]!, items[smallest]!) < 0) smallest = left;
          if (right < items.length && compare(items[right]!, items[smallest]!) < 0) smallest = right;
          if (smallest === i) break;
          [items[i], items[smallest]] = [items[smallest]!, items[i]!];
          i = smallest;
        }
      }
      return top;
    },
    peek: () => items[0],
  };
}

export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
