// A deterministic Nexmark event generator: people, auctions and bids in the standard 1:3:46
// proportion, with event times one millisecond apart, all drawn from one seeded generator.
import type { EventInput } from '../src/index.js';
import { seededRandom } from '../test/support/random.js';

export interface NexmarkOptions {
  events: number;
  /** @default 42 */
  seed?: number;
  /** Event time of the first event, in ms since the epoch. @default 2026-01-01T00:00:00Z */
  startTime?: number;
  /** Event-time distance between consecutive events. @default 1 */
  interEventMs?: number;
}

export const NEXMARK_TYPES = {
  person: 'nexmark.person',
  auction: 'nexmark.auction',
  bid: 'nexmark.bid',
} as const;

const CITIES = ['Phoenix', 'Los Angeles', 'San Francisco', 'Boise', 'Portland', 'Bend', 'Redmond', 'Seattle'];
const STATES = ['AZ', 'CA', 'ID', 'OR', 'WA', 'WY'];
const CHANNELS = ['Google', 'Facebook', 'Baidu', 'Apple'];

/** Yields the events in order, in chunks ready to append. */
export function* generateNexmark(options: NexmarkOptions, chunkSize = 5000): Generator<EventInput[]> {
  const random = seededRandom(options.seed ?? 42);
  const start = options.startTime ?? Date.UTC(2026, 0, 1);
  const step = options.interEventMs ?? 1;
  let people = 0;
  let auctions = 0;
  let chunk: EventInput[] = [];
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)]!;
  // Recent ids are hotter: a squared uniform draw skews towards the newest.
  const recent = (count: number, window: number) =>
    Math.max(1, count - Math.floor(random() ** 2 * Math.min(count, window)));
  for (let i = 0; i < options.events; i++) {
    const eventTime = new Date(start + i * step).toISOString();
    const slot = i % 50;
    let event: EventInput;
    if (slot === 0 || people === 0) {
      people += 1;
      event = {
        type: NEXMARK_TYPES.person,
        data: {
          id: people,
          name: `person-${people}`,
          email: `p${people}@example.com`,
          city: pick(CITIES),
          state: pick(STATES),
          dateTime: eventTime,
        },
        eventTime,
      };
    } else if (slot <= 3 || auctions === 0) {
      auctions += 1;
      event = {
        type: NEXMARK_TYPES.auction,
        data: {
          id: auctions,
          itemName: `item-${auctions}`,
          initialBid: 1 + Math.floor(random() * 1000),
          reserve: 1000 + Math.floor(random() * 10_000),
          seller: recent(people, 100),
          category: 10 + Math.floor(random() * 5),
          expires: new Date(start + i * step + 20_000).toISOString(),
          dateTime: eventTime,
        },
        eventTime,
      };
    } else {
      event = {
        type: NEXMARK_TYPES.bid,
        data: {
          auction: recent(auctions, 100),
          bidder: recent(people, 1000),
          price: 100 + Math.floor(random() * 100_000),
          channel: pick(CHANNELS),
          url: `https://example.com/item/${i}`,
          dateTime: eventTime,
        },
        eventTime,
      };
    }
    chunk.push(event);
    if (chunk.length === chunkSize) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length > 0) yield chunk;
}
