// SPDX-License-Identifier: MIT
pragma solidity 0.8.19;

/// @title CometLike
/// @notice A devnet stand-in for a Compound III (Comet) market, written for liqmon's tests from Compound III's
///         documented behaviour. Function names, signatures, events, errors and integer arithmetic follow the
///         real contract (each function names its counterpart in Compound's `Comet.sol` / `CometExt.sol`), so a
///         reader written against this contract also reads a mainnet Comet:
///         - base balances are signed principals; present value = principal * index / 1e15 (rounded down),
///           principal from a present value rounds down for supply and up for borrow (`CometCore`);
///         - interest accrues only when something calls `accrueInternal` (every base movement, `absorb`,
///           `accrueAccount`): the stored indices grow by index * rate * elapsed / 1e18 with the kinked rate
///           model of `getUtilization` / `getSupplyRate` / `getBorrowRate` on the stored indices;
///         - `balanceOf` / `borrowBalanceOf` / `totalSupply` / `totalBorrow` project the indices to now, while
///           `isLiquidatable` / `isBorrowCollateralized` use the stored ones; `absorb` accrues first, so a
///           stale index can make `isLiquidatable` say false while `absorb` succeeds;
///         - a base `transfer` / `transferFrom` may take the sender's balance negative (a borrow without any
///           `Withdraw` event), as `transferBase` does;
///         - prices come from 8-decimal feeds (`getPrice` reverts `BadPrice` on an answer <= 0).
///         Not modelled: token custody (no ERC-20 moves: collateral and base enter through governor-only test
///         mutators), reward tracking (tracking indices stay 0), pausing, `buyCollateral`, reserves, signatures.
contract CometLike {
    struct AssetInfo {
        uint8 offset;
        address asset;
        address priceFeed;
        uint64 scale;
        uint64 borrowCollateralFactor;
        uint64 liquidateCollateralFactor;
        uint64 liquidationFactor;
        uint128 supplyCap;
    }

    /// @dev Per-year rate parameters (1e18 = 100 %), as in Comet's `Configuration`; stored per second.
    struct RateConfig {
        uint64 supplyKink;
        uint64 supplyPerYearInterestRateSlopeLow;
        uint64 supplyPerYearInterestRateSlopeHigh;
        uint64 supplyPerYearInterestRateBase;
        uint64 borrowKink;
        uint64 borrowPerYearInterestRateSlopeLow;
        uint64 borrowPerYearInterestRateSlopeHigh;
        uint64 borrowPerYearInterestRateBase;
    }

    /// @dev The layout `CometExt.totalsBasic()` returns.
    struct TotalsBasic {
        uint64 baseSupplyIndex;
        uint64 baseBorrowIndex;
        uint64 trackingSupplyIndex;
        uint64 trackingBorrowIndex;
        uint104 totalSupplyBase;
        uint104 totalBorrowBase;
        uint40 lastAccrualTime;
        uint8 pauseFlags;
    }

    struct UserBasic {
        int104 principal;
        uint64 baseTrackingIndex;
        uint64 baseTrackingAccrued;
        uint16 assetsIn;
        uint8 _reserved;
    }

    struct UserCollateral {
        uint128 balance;
        uint128 _reserved;
    }

    struct TotalsCollateral {
        uint128 totalSupplyAsset;
        uint128 _reserved;
    }

    uint64 internal constant BASE_INDEX_SCALE = 1e15;
    uint64 internal constant FACTOR_SCALE = 1e18;
    uint64 internal constant SECONDS_PER_YEAR = 31_536_000;
    uint8 internal constant PRICE_FEED_DECIMALS = 8;
    uint64 internal constant PRICE_SCALE = 1e8;
    uint8 internal constant MAX_ASSETS = 15; // assetsIn is a uint16 bitmap, as in Comet
    bytes4 internal constant FEED_DECIMALS = bytes4(keccak256("decimals()"));
    bytes4 internal constant FEED_LATEST_ROUND_DATA = bytes4(keccak256("latestRoundData()"));

    address public immutable governor;
    address public immutable baseToken;
    address public immutable baseTokenPriceFeed;
    uint8 public immutable decimals;
    uint256 public immutable baseScale;
    uint256 public immutable baseBorrowMin;

    uint256 public immutable supplyKink;
    uint256 public immutable supplyPerSecondInterestRateSlopeLow;
    uint256 public immutable supplyPerSecondInterestRateSlopeHigh;
    uint256 public immutable supplyPerSecondInterestRateBase;
    uint256 public immutable borrowKink;
    uint256 public immutable borrowPerSecondInterestRateSlopeLow;
    uint256 public immutable borrowPerSecondInterestRateSlopeHigh;
    uint256 public immutable borrowPerSecondInterestRateBase;

    uint8 public numAssets;

    // the market totals (Comet's `CometStorage` slots, read through `totalsBasic()`)
    uint64 internal baseSupplyIndex;
    uint64 internal baseBorrowIndex;
    uint64 internal trackingSupplyIndex;
    uint64 internal trackingBorrowIndex;
    uint104 internal totalSupplyBase;
    uint104 internal totalBorrowBase;
    uint40 internal lastAccrualTime;
    uint8 internal pauseFlags;

    mapping(uint8 => AssetInfo) internal assetInfos;
    mapping(address => UserBasic) public userBasic;
    mapping(address => mapping(address => UserCollateral)) public userCollateral;
    mapping(address => TotalsCollateral) public totalsCollateral;
    mapping(address => mapping(address => bool)) public isAllowed;

    event Supply(address indexed from, address indexed dst, uint256 amount);
    event Transfer(address indexed from, address indexed to, uint256 amount);
    event Withdraw(address indexed src, address indexed to, uint256 amount);
    event SupplyCollateral(address indexed from, address indexed dst, address indexed asset, uint256 amount);
    event TransferCollateral(address indexed from, address indexed to, address indexed asset, uint256 amount);
    event WithdrawCollateral(address indexed src, address indexed to, address indexed asset, uint256 amount);
    event AbsorbDebt(address indexed absorber, address indexed borrower, uint256 basePaidOut, uint256 usdValue);
    event AbsorbCollateral(
        address indexed absorber,
        address indexed borrower,
        address indexed asset,
        uint256 collateralAbsorbed,
        uint256 usdValue
    );

    error Unauthorized();
    error BadAsset();
    error BadDecimals();
    error BadPrice();
    error BadPriceFeed();
    error BadScale();
    error BadIndex();
    error BorrowCFTooLarge();
    error BorrowTooSmall();
    error LiquidateCFTooLarge();
    error LiquidationFactorTooLarge();
    error NoSelfTransfer();
    error NotCollateralized();
    error NotLiquidatable();
    error TimestampTooLarge();
    error TooManyAssets();
    error SupplyCapExceeded();
    error InvalidUInt64();
    error InvalidInt104();
    error InvalidUInt104();
    error InvalidUInt128();
    error InvalidInt256();
    error NegativeNumber();

    modifier onlyGovernor() {
        if (msg.sender != governor) revert Unauthorized();
        _;
    }

    /// @dev Comet's constructor + `initializeStorage`: per-year rates divided by SECONDS_PER_YEAR (rounded
    ///      down), indices at 1e15, lastAccrualTime = now.
    constructor(
        address baseToken_,
        address baseTokenPriceFeed_,
        uint8 decimals_,
        uint256 baseBorrowMin_,
        RateConfig memory rates
    ) {
        if (decimals_ > 18) revert BadDecimals();
        if (_feedDecimals(baseTokenPriceFeed_) != PRICE_FEED_DECIMALS) revert BadDecimals();
        governor = msg.sender;
        baseToken = baseToken_;
        baseTokenPriceFeed = baseTokenPriceFeed_;
        decimals = decimals_;
        baseScale = 10 ** decimals_;
        baseBorrowMin = baseBorrowMin_;
        supplyKink = rates.supplyKink;
        supplyPerSecondInterestRateSlopeLow = rates.supplyPerYearInterestRateSlopeLow / SECONDS_PER_YEAR;
        supplyPerSecondInterestRateSlopeHigh = rates.supplyPerYearInterestRateSlopeHigh / SECONDS_PER_YEAR;
        supplyPerSecondInterestRateBase = rates.supplyPerYearInterestRateBase / SECONDS_PER_YEAR;
        borrowKink = rates.borrowKink;
        borrowPerSecondInterestRateSlopeLow = rates.borrowPerYearInterestRateSlopeLow / SECONDS_PER_YEAR;
        borrowPerSecondInterestRateSlopeHigh = rates.borrowPerYearInterestRateSlopeHigh / SECONDS_PER_YEAR;
        borrowPerSecondInterestRateBase = rates.borrowPerYearInterestRateBase / SECONDS_PER_YEAR;
        baseSupplyIndex = BASE_INDEX_SCALE;
        baseBorrowIndex = BASE_INDEX_SCALE;
        lastAccrualTime = _now();
    }

    // -- constants and totals, as Comet / CometExt expose them ---------------------------------------------

    function baseIndexScale() external pure returns (uint64) {
        return BASE_INDEX_SCALE;
    }

    function factorScale() external pure returns (uint64) {
        return FACTOR_SCALE;
    }

    function priceScale() external pure returns (uint64) {
        return PRICE_SCALE;
    }

    function maxAssets() external pure returns (uint8) {
        return MAX_ASSETS;
    }

    /// @notice CometExt.totalsBasic: the stored indices, totals and lastAccrualTime (not projected to now).
    function totalsBasic() external view returns (TotalsBasic memory) {
        return
            TotalsBasic({
                baseSupplyIndex: baseSupplyIndex,
                baseBorrowIndex: baseBorrowIndex,
                trackingSupplyIndex: trackingSupplyIndex,
                trackingBorrowIndex: trackingBorrowIndex,
                totalSupplyBase: totalSupplyBase,
                totalBorrowBase: totalBorrowBase,
                lastAccrualTime: lastAccrualTime,
                pauseFlags: pauseFlags
            });
    }

    // -- assets and prices ----------------------------------------------------------------------------

    function getAssetInfo(uint8 i) public view returns (AssetInfo memory) {
        if (i >= numAssets) revert BadAsset();
        return assetInfos[i];
    }

    function getAssetInfoByAddress(address asset) public view returns (AssetInfo memory) {
        uint8 n = numAssets;
        for (uint8 i = 0; i < n; i++) {
            if (assetInfos[i].asset == asset) return assetInfos[i];
        }
        revert BadAsset();
    }

    /// @notice Comet.getPrice: the feed's latest answer (8 decimals); reverts when it is not positive.
    function getPrice(address priceFeed) public view returns (uint256) {
        (, int256 answer, , , ) = abi.decode(
            _feedCall(priceFeed, FEED_LATEST_ROUND_DATA),
            (uint80, int256, uint256, uint256, uint80)
        );
        if (answer <= 0) revert BadPrice();
        return uint256(answer);
    }

    // -- interest (Comet.getUtilization, getSupplyRate, getBorrowRate, accruedInterestIndices, accrueInternal)

    /// @notice Comet.getUtilization: borrows over supply at the STORED indices (1e18 scale), 0 without supply.
    function getUtilization() public view returns (uint256) {
        uint256 supplied = _presentValueSupply(baseSupplyIndex, totalSupplyBase);
        uint256 borrowed = _presentValueBorrow(baseBorrowIndex, totalBorrowBase);
        if (supplied == 0) return 0;
        return (borrowed * FACTOR_SCALE) / supplied;
    }

    /// @notice Comet.getSupplyRate: per-second rate, base + slopeLow below the kink, + slopeHigh above it.
    function getSupplyRate(uint256 utilization) public view returns (uint64) {
        return
            _kinked(
                utilization,
                supplyKink,
                supplyPerSecondInterestRateBase,
                supplyPerSecondInterestRateSlopeLow,
                supplyPerSecondInterestRateSlopeHigh
            );
    }

    /// @notice Comet.getBorrowRate: per-second rate, base + slopeLow below the kink, + slopeHigh above it.
    function getBorrowRate(uint256 utilization) public view returns (uint64) {
        return
            _kinked(
                utilization,
                borrowKink,
                borrowPerSecondInterestRateBase,
                borrowPerSecondInterestRateSlopeLow,
                borrowPerSecondInterestRateSlopeHigh
            );
    }

    /// @notice Comet.accrueAccount: accrue the market's indices to now. (Comet then rewrites the account's
    ///         principal to settle reward tracking; the principal itself does not change.)
    function accrueAccount(address account) external {
        _accrue();
        UserBasic memory basic = userBasic[account];
        _updateBasePrincipal(account, basic, basic.principal);
    }

    // -- balances -------------------------------------------------------------------------------------

    /// @notice Comet.balanceOf: the supply balance at the indices projected to now.
    function balanceOf(address account) public view returns (uint256) {
        (uint64 supplyIndex, ) = _accruedIndices(_now() - lastAccrualTime);
        int104 principal = userBasic[account].principal;
        return principal > 0 ? _presentValueSupply(supplyIndex, uint104(principal)) : 0;
    }

    /// @notice Comet.borrowBalanceOf: the borrow balance at the indices projected to now (interest included).
    function borrowBalanceOf(address account) external view returns (uint256) {
        (, uint64 borrowIndex) = _accruedIndices(_now() - lastAccrualTime);
        int104 principal = userBasic[account].principal;
        return principal < 0 ? _presentValueBorrow(borrowIndex, uint104(-principal)) : 0;
    }

    function collateralBalanceOf(address account, address asset) external view returns (uint128) {
        return userCollateral[account][asset].balance;
    }

    function totalSupply() external view returns (uint256) {
        (uint64 supplyIndex, ) = _accruedIndices(_now() - lastAccrualTime);
        return _presentValueSupply(supplyIndex, totalSupplyBase);
    }

    function totalBorrow() external view returns (uint256) {
        (, uint64 borrowIndex) = _accruedIndices(_now() - lastAccrualTime);
        return _presentValueBorrow(borrowIndex, totalBorrowBase);
    }

    // -- account health (stored indices, as Comet) ------------------------------------------------------

    /// @notice Comet.isLiquidatable: the debt at the STORED borrow index exceeds the collateral value
    ///         weighted by liquidateCollateralFactor.
    function isLiquidatable(address account) public view returns (bool) {
        UserBasic memory basic = userBasic[account];
        if (basic.principal >= 0) return false;
        int256 liquidity = _baseLiquidity(basic.principal);
        uint8 n = numAssets;
        for (uint8 i = 0; i < n; i++) {
            if (!_isInAsset(basic.assetsIn, i)) continue;
            if (liquidity >= 0) return false;
            AssetInfo memory info = assetInfos[i];
            liquidity += _signed256(_mulFactor(_collateralValue(account, info), info.liquidateCollateralFactor));
        }
        return liquidity < 0;
    }

    /// @notice Comet.isBorrowCollateralized: the debt at the STORED borrow index is covered by the collateral
    ///         value weighted by borrowCollateralFactor.
    function isBorrowCollateralized(address account) public view returns (bool) {
        UserBasic memory basic = userBasic[account];
        if (basic.principal >= 0) return true;
        int256 liquidity = _baseLiquidity(basic.principal);
        uint8 n = numAssets;
        for (uint8 i = 0; i < n; i++) {
            if (!_isInAsset(basic.assetsIn, i)) continue;
            if (liquidity >= 0) return true;
            AssetInfo memory info = assetInfos[i];
            liquidity += _signed256(_mulFactor(_collateralValue(account, info), info.borrowCollateralFactor));
        }
        return liquidity >= 0;
    }

    // -- user actions ---------------------------------------------------------------------------------

    /// @notice CometExt.allow: let `manager` move the caller's balances.
    function allow(address manager, bool isAllowed_) external {
        isAllowed[msg.sender][manager] = isAllowed_;
    }

    /// @notice Comet.transfer: move base to `dst`, borrowing when the sender's balance is not enough.
    function transfer(address dst, uint256 amount) external returns (bool) {
        _transfer(msg.sender, msg.sender, dst, baseToken, amount);
        return true;
    }

    /// @notice Comet.transferFrom: as `transfer`, from `src` when the caller may act for it.
    function transferFrom(address src, address dst, uint256 amount) external returns (bool) {
        _transfer(msg.sender, src, dst, baseToken, amount);
        return true;
    }

    /// @notice Comet.transferAsset: move base or a collateral to `dst`.
    function transferAsset(address dst, address asset, uint256 amount) external {
        _transfer(msg.sender, msg.sender, dst, asset, amount);
    }

    /// @notice Comet.transferAssetFrom: as `transferAsset`, from `src` when the caller may act for it.
    function transferAssetFrom(address src, address dst, address asset, uint256 amount) external {
        _transfer(msg.sender, src, dst, asset, amount);
    }

    /// @notice Comet.absorb: accrue once, then absorb every account (each must be liquidatable at the
    ///         accrued index, else the whole call reverts NotLiquidatable).
    function absorb(address absorber, address[] calldata accounts) external {
        _accrue();
        for (uint256 i = 0; i < accounts.length; i++) {
            _absorbOne(absorber, accounts[i]);
        }
    }

    // -- test-only mutators (governor) ----------------------------------------------------------------

    function addAsset(
        address asset,
        address priceFeed,
        uint64 scale,
        uint64 borrowCollateralFactor,
        uint64 liquidateCollateralFactor,
        uint64 liquidationFactor,
        uint128 supplyCap
    ) external onlyGovernor {
        uint8 offset = numAssets;
        if (offset >= MAX_ASSETS) revert TooManyAssets();
        if (asset == address(0) || asset == baseToken) revert BadAsset();
        for (uint8 i = 0; i < offset; i++) {
            if (assetInfos[i].asset == asset) revert BadAsset();
        }
        if (_feedDecimals(priceFeed) != PRICE_FEED_DECIMALS) revert BadDecimals();
        if (!_isPowerOfTen(scale)) revert BadScale();
        if (borrowCollateralFactor >= liquidateCollateralFactor) revert BorrowCFTooLarge();
        if (liquidateCollateralFactor > FACTOR_SCALE) revert LiquidateCFTooLarge();
        if (liquidationFactor > FACTOR_SCALE) revert LiquidationFactorTooLarge();
        assetInfos[offset] = AssetInfo({
            offset: offset,
            asset: asset,
            priceFeed: priceFeed,
            scale: scale,
            borrowCollateralFactor: borrowCollateralFactor,
            liquidateCollateralFactor: liquidateCollateralFactor,
            liquidationFactor: liquidationFactor,
            supplyCap: supplyCap
        });
        numAssets = offset + 1;
    }

    /// @notice Set the account's collateral balance of `asset` (Comet.supplyCollateral / withdrawCollateral
    ///         without the token transfer and the collateral check): emits SupplyCollateral for an increase and
    ///         WithdrawCollateral for a decrease (amount = the difference), and keeps `assetsIn` in step.
    function setCollateral(address account, address asset, uint128 balance) external onlyGovernor {
        AssetInfo memory info = getAssetInfoByAddress(asset);
        UserCollateral storage held = userCollateral[account][asset];
        TotalsCollateral storage totals = totalsCollateral[asset];
        uint128 previous = held.balance;
        if (balance > previous) {
            uint128 added = balance - previous;
            totals.totalSupplyAsset += added;
            if (totals.totalSupplyAsset > info.supplyCap) revert SupplyCapExceeded();
            emit SupplyCollateral(account, account, asset, added);
        } else if (balance < previous) {
            uint128 removed = previous - balance;
            totals.totalSupplyAsset -= removed;
            emit WithdrawCollateral(account, account, asset, removed);
        }
        held.balance = balance;
        _updateAssetsIn(account, info, previous, balance);
    }

    /// @notice Comet.withdrawBase for the account without the token transfer, the BorrowTooSmall and the
    ///         collateral checks (so tests can build positions at any health): accrues first, then present value
    ///         minus amount back to a principal (a borrow rounds up). Emits Withdraw(account, account, amount),
    ///         and Transfer(account, 0, supply withdrawn) when part of it was a supply.
    function borrow(address account, uint256 amount) external onlyGovernor {
        _accrue();
        UserBasic memory basic = userBasic[account];
        int104 principal = basic.principal;
        int104 principalNew = _principalValue(_presentValue(principal) - _signed256(amount));
        (uint104 withdrawn, uint104 borrowed) = _withdrawAndBorrowAmount(principal, principalNew);
        totalSupplyBase -= withdrawn;
        totalBorrowBase += borrowed;
        _updateBasePrincipal(account, basic, principalNew);
        emit Withdraw(account, account, amount);
        if (withdrawn > 0) emit Transfer(account, address(0), _presentValueSupply(baseSupplyIndex, withdrawn));
    }

    /// @notice Comet.supplyBase for the account without the token transfer: accrues first, repays a borrow
    ///         first. Emits Supply(account, account, amount), and Transfer(0, account, supply added).
    function supply(address account, uint256 amount) external onlyGovernor {
        _accrue();
        UserBasic memory basic = userBasic[account];
        int104 principal = basic.principal;
        int104 principalNew = _principalValue(_presentValue(principal) + _signed256(amount));
        (uint104 repaid, uint104 supplied) = _repayAndSupplyAmount(principal, principalNew);
        totalSupplyBase += supplied;
        totalBorrowBase -= repaid;
        _updateBasePrincipal(account, basic, principalNew);
        emit Supply(account, account, amount);
        if (supplied > 0) emit Transfer(address(0), account, _presentValueSupply(baseSupplyIndex, supplied));
    }

    /// @notice Test-only: overwrite the stored borrow index (no accrual, lastAccrualTime unchanged).
    function setBorrowIndex(uint64 index) external onlyGovernor {
        if (index == 0) revert BadIndex();
        baseBorrowIndex = index;
    }

    /// @notice Test-only: overwrite the stored supply index (no accrual, lastAccrualTime unchanged).
    function setSupplyIndex(uint64 index) external onlyGovernor {
        if (index == 0) revert BadIndex();
        baseSupplyIndex = index;
    }

    // -- internals: transfers and absorption ------------------------------------------------------------

    /// @dev Comet.transferInternal.
    function _transfer(address operator, address src, address dst, address asset, uint256 amount) internal {
        if (src != operator && !isAllowed[src][operator]) revert Unauthorized();
        if (src == dst) revert NoSelfTransfer();
        if (asset == baseToken) {
            if (amount == type(uint256).max) amount = balanceOf(src);
            _transferBase(src, dst, amount);
        } else {
            _transferCollateral(src, dst, asset, _safe128(amount));
        }
    }

    /// @dev Comet.transferBase: accrue, move present value, re-derive both principals; a negative result for
    ///      `src` is a borrow (at least baseBorrowMin, borrow-collateralized). Transfer events name only the
    ///      supply withdrawn from `src` and added to `dst`: a borrow from a zero balance emits none for `src`.
    function _transferBase(address src, address dst, uint256 amount) internal {
        _accrue();
        UserBasic memory srcUser = userBasic[src];
        UserBasic memory dstUser = userBasic[dst];
        int104 srcPrincipal = srcUser.principal;
        int104 dstPrincipal = dstUser.principal;
        int256 srcBalance = _presentValue(srcPrincipal) - _signed256(amount);
        int256 dstBalance = _presentValue(dstPrincipal) + _signed256(amount);
        int104 srcPrincipalNew = _principalValue(srcBalance);
        int104 dstPrincipalNew = _principalValue(dstBalance);
        (uint104 withdrawn, uint104 borrowed) = _withdrawAndBorrowAmount(srcPrincipal, srcPrincipalNew);
        (uint104 repaid, uint104 supplied) = _repayAndSupplyAmount(dstPrincipal, dstPrincipalNew);
        totalSupplyBase = totalSupplyBase + supplied - withdrawn;
        totalBorrowBase = totalBorrowBase + borrowed - repaid;
        _updateBasePrincipal(src, srcUser, srcPrincipalNew);
        _updateBasePrincipal(dst, dstUser, dstPrincipalNew);
        if (srcBalance < 0) {
            if (uint256(-srcBalance) < baseBorrowMin) revert BorrowTooSmall();
            if (!isBorrowCollateralized(src)) revert NotCollateralized();
        }
        if (withdrawn > 0) emit Transfer(src, address(0), _presentValueSupply(baseSupplyIndex, withdrawn));
        if (supplied > 0) emit Transfer(address(0), dst, _presentValueSupply(baseSupplyIndex, supplied));
    }

    /// @dev Comet.transferCollateral (no accrual; the sender must stay borrow-collateralized).
    function _transferCollateral(address src, address dst, address asset, uint128 amount) internal {
        uint128 srcCollateral = userCollateral[src][asset].balance;
        uint128 dstCollateral = userCollateral[dst][asset].balance;
        uint128 srcCollateralNew = srcCollateral - amount;
        uint128 dstCollateralNew = dstCollateral + amount;
        userCollateral[src][asset].balance = srcCollateralNew;
        userCollateral[dst][asset].balance = dstCollateralNew;
        AssetInfo memory info = getAssetInfoByAddress(asset);
        _updateAssetsIn(src, info, srcCollateral, srcCollateralNew);
        _updateAssetsIn(dst, info, dstCollateral, dstCollateralNew);
        if (!isBorrowCollateralized(src)) revert NotCollateralized();
        emit TransferCollateral(src, dst, asset, amount);
    }

    /// @dev Comet.absorbInternal: seize every collateral in assetsIn at its liquidationFactor, credit its value
    ///      in base, floor the new balance at zero (reserves take the excess debt).
    function _absorbOne(address absorber, address account) internal {
        if (!isLiquidatable(account)) revert NotLiquidatable();
        UserBasic memory user = userBasic[account];
        int104 oldPrincipal = user.principal;
        int256 oldBalance = _presentValue(oldPrincipal);
        uint16 assetsIn = user.assetsIn;
        uint256 basePrice = getPrice(baseTokenPriceFeed);
        uint256 deltaValue = 0;
        uint8 n = numAssets;
        for (uint8 i = 0; i < n; i++) {
            if (!_isInAsset(assetsIn, i)) continue;
            AssetInfo memory info = assetInfos[i];
            uint128 seized = userCollateral[account][info.asset].balance;
            userCollateral[account][info.asset].balance = 0;
            totalsCollateral[info.asset].totalSupplyAsset -= seized;
            uint256 value = _mulPrice(seized, getPrice(info.priceFeed), info.scale);
            deltaValue += _mulFactor(value, info.liquidationFactor);
            emit AbsorbCollateral(absorber, account, info.asset, seized, value);
        }
        uint256 deltaBalance = (deltaValue * baseScale) / basePrice; // divPrice
        int256 newBalance = oldBalance + _signed256(deltaBalance);
        if (newBalance < 0) newBalance = 0;
        int104 newPrincipal = _principalValue(newBalance);
        _updateBasePrincipal(account, user, newPrincipal);
        userBasic[account].assetsIn = 0;
        (uint104 repaid, uint104 supplied) = _repayAndSupplyAmount(oldPrincipal, newPrincipal);
        totalSupplyBase += supplied;
        totalBorrowBase -= repaid;
        uint256 basePaidOut = _unsigned256(newBalance - oldBalance);
        emit AbsorbDebt(absorber, account, basePaidOut, _mulPrice(basePaidOut, basePrice, uint64(baseScale)));
        if (newPrincipal > 0) {
            emit Transfer(address(0), account, _presentValueSupply(baseSupplyIndex, uint104(newPrincipal)));
        }
    }

    // -- internals: accrual -----------------------------------------------------------------------------

    /// @dev Comet.getNowInternal.
    function _now() internal view returns (uint40) {
        if (block.timestamp >= 2 ** 40) revert TimestampTooLarge();
        return uint40(block.timestamp);
    }

    /// @dev Comet.accruedInterestIndices: index += index * rate(utilization at the stored indices) * elapsed.
    function _accruedIndices(uint256 elapsed) internal view returns (uint64, uint64) {
        uint64 supplyIndex = baseSupplyIndex;
        uint64 borrowIndex = baseBorrowIndex;
        if (elapsed > 0) {
            uint256 utilization = getUtilization();
            uint256 supplyRate = getSupplyRate(utilization);
            uint256 borrowRate = getBorrowRate(utilization);
            supplyIndex += _safe64(_mulFactor(supplyIndex, supplyRate * elapsed));
            borrowIndex += _safe64(_mulFactor(borrowIndex, borrowRate * elapsed));
        }
        return (supplyIndex, borrowIndex);
    }

    /// @dev Comet.accrueInternal (without reward tracking).
    function _accrue() internal {
        uint40 now_ = _now();
        uint256 elapsed = uint256(now_ - lastAccrualTime);
        if (elapsed > 0) {
            (baseSupplyIndex, baseBorrowIndex) = _accruedIndices(elapsed);
            lastAccrualTime = now_;
        }
    }

    function _kinked(
        uint256 utilization,
        uint256 kink,
        uint256 base,
        uint256 slopeLow,
        uint256 slopeHigh
    ) internal pure returns (uint64) {
        if (utilization <= kink) return _safe64(base + _mulFactor(slopeLow, utilization));
        return _safe64(base + _mulFactor(slopeLow, kink) + _mulFactor(slopeHigh, utilization - kink));
    }

    // -- internals: principals --------------------------------------------------------------------------

    /// @dev Comet.updateBasePrincipal without reward tracking: store the new principal.
    function _updateBasePrincipal(address account, UserBasic memory basic, int104 principalNew) internal {
        basic.principal = principalNew;
        userBasic[account] = basic;
    }

    /// @dev Comet.updateAssetsIn.
    function _updateAssetsIn(address account, AssetInfo memory info, uint128 initial, uint128 final_) internal {
        uint16 flag = uint16(1) << info.offset;
        if (initial == 0 && final_ != 0) {
            userBasic[account].assetsIn |= flag;
        } else if (initial != 0 && final_ == 0) {
            userBasic[account].assetsIn &= ~flag;
        }
    }

    /// @dev Comet.repayAndSupplyAmount: an increase of principal split into debt repaid and supply added.
    function _repayAndSupplyAmount(int104 oldPrincipal, int104 newPrincipal) internal pure returns (uint104, uint104) {
        if (newPrincipal < oldPrincipal) return (0, 0);
        if (newPrincipal <= 0) return (uint104(newPrincipal - oldPrincipal), 0);
        if (oldPrincipal >= 0) return (0, uint104(newPrincipal - oldPrincipal));
        return (uint104(-oldPrincipal), uint104(newPrincipal));
    }

    /// @dev Comet.withdrawAndBorrowAmount: a decrease of principal split into supply withdrawn and debt added.
    function _withdrawAndBorrowAmount(
        int104 oldPrincipal,
        int104 newPrincipal
    ) internal pure returns (uint104, uint104) {
        if (newPrincipal > oldPrincipal) return (0, 0);
        if (newPrincipal >= 0) return (uint104(oldPrincipal - newPrincipal), 0);
        if (oldPrincipal <= 0) return (0, uint104(oldPrincipal - newPrincipal));
        return (uint104(oldPrincipal), uint104(-newPrincipal));
    }

    // -- price feeds (a Chainlink AggregatorV3: decimals() and latestRoundData()) ----------------------

    function _feedDecimals(address feed) internal view returns (uint8) {
        return abi.decode(_feedCall(feed, FEED_DECIMALS), (uint8));
    }

    /// @dev A static call to the feed; its revert data is passed on unchanged.
    function _feedCall(address feed, bytes4 selector) internal view returns (bytes memory) {
        if (feed.code.length == 0) revert BadPriceFeed();
        (bool ok, bytes memory data) = feed.staticcall(abi.encodeWithSelector(selector));
        if (!ok) {
            assembly {
                revert(add(data, 32), mload(data))
            }
        }
        return data;
    }

    // -- arithmetic (CometCore / CometMath / Comet helpers) ------------------------------------------------

    function _baseLiquidity(int104 principal) internal view returns (int256) {
        return _signedMulPrice(_presentValue(principal), getPrice(baseTokenPriceFeed), baseScale);
    }

    function _collateralValue(address account, AssetInfo memory info) internal view returns (uint256) {
        return _mulPrice(userCollateral[account][info.asset].balance, getPrice(info.priceFeed), info.scale);
    }

    /// @dev CometCore.presentValue at the stored indices.
    function _presentValue(int104 principal) internal view returns (int256) {
        if (principal >= 0) return _signed256(_presentValueSupply(baseSupplyIndex, uint104(principal)));
        return -_signed256(_presentValueBorrow(baseBorrowIndex, uint104(-principal)));
    }

    /// @dev CometCore.principalValue at the stored indices.
    function _principalValue(int256 presentValue) internal view returns (int104) {
        if (presentValue >= 0) return _signed104(_principalValueSupply(baseSupplyIndex, uint256(presentValue)));
        return -_signed104(_principalValueBorrow(baseBorrowIndex, uint256(-presentValue)));
    }

    function _presentValueSupply(uint64 index, uint104 principal) internal pure returns (uint256) {
        return (uint256(principal) * index) / BASE_INDEX_SCALE;
    }

    function _presentValueBorrow(uint64 index, uint104 principal) internal pure returns (uint256) {
        return (uint256(principal) * index) / BASE_INDEX_SCALE;
    }

    function _principalValueSupply(uint64 index, uint256 presentValue) internal pure returns (uint104) {
        return _unsigned104((presentValue * BASE_INDEX_SCALE) / index);
    }

    function _principalValueBorrow(uint64 index, uint256 presentValue) internal pure returns (uint104) {
        return _unsigned104((presentValue * BASE_INDEX_SCALE + index - 1) / index);
    }

    function _mulPrice(uint256 n, uint256 price, uint64 fromScale) internal pure returns (uint256) {
        return (n * price) / fromScale;
    }

    /// @dev Signed division truncates toward zero, so a negative value rounds up (toward zero).
    function _signedMulPrice(int256 n, uint256 price, uint256 fromScale) internal pure returns (int256) {
        return (n * _signed256(price)) / _signed256(fromScale);
    }

    function _mulFactor(uint256 n, uint256 factor) internal pure returns (uint256) {
        return (n * factor) / FACTOR_SCALE;
    }

    function _isInAsset(uint16 assetsIn, uint8 offset) internal pure returns (bool) {
        return assetsIn & (uint16(1) << offset) != 0;
    }

    function _isPowerOfTen(uint64 value) internal pure returns (bool) {
        if (value == 0) return false;
        while (value % 10 == 0) value /= 10;
        return value == 1;
    }

    function _safe64(uint256 n) internal pure returns (uint64) {
        if (n > type(uint64).max) revert InvalidUInt64();
        return uint64(n);
    }

    function _safe128(uint256 n) internal pure returns (uint128) {
        if (n > type(uint128).max) revert InvalidUInt128();
        return uint128(n);
    }

    function _signed104(uint104 n) internal pure returns (int104) {
        if (n > uint104(type(int104).max)) revert InvalidInt104();
        return int104(n);
    }

    function _unsigned104(uint256 n) internal pure returns (uint104) {
        if (n > type(uint104).max) revert InvalidUInt104();
        return uint104(n);
    }

    function _signed256(uint256 n) internal pure returns (int256) {
        if (n > uint256(type(int256).max)) revert InvalidInt256();
        return int256(n);
    }

    function _unsigned256(int256 n) internal pure returns (uint256) {
        if (n < 0) revert NegativeNumber();
        return uint256(n);
    }
}
