// The module TWINFLOW_TWINS names: its default export lists the twin types this package adds.
//   TWINFLOW_TWINS=./examples/twins/index.ts npm start
import { waterTankTwin } from './water-tank.twin';

export { waterTankTwin };
export default [waterTankTwin];
